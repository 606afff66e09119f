#!/usr/bin/env python3
"""Reads a dataset prefix with Megatron-LM's own IndexedDataset (pip install --no-deps megatron-core)
and prints its sequence count and the first tokens. megatron_loader.py explains how it is imported.

    /usr/bin/python3 tools/megatron_read_dataset.py PREFIX [EXPECTED_SEQUENCES]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import megatron_loader  # noqa: E402,F401
from megatron.core.datasets.indexed_dataset import IndexedDataset  # noqa: E402

d = IndexedDataset(sys.argv[1])
print(len(d), "sequences; first:", list(d[0][:8]), "dtype", d[0].dtype)
if len(sys.argv) > 2 and len(d) != int(sys.argv[2]):
    sys.exit(f"expected {sys.argv[2]} sequences")
