#!/usr/bin/env python3
"""Reads a dataset prefix with Megatron-LM's own IndexedDataset (pip install --no-deps megatron-core)
and prints its sequence count and the first tokens. megatron.core's package __init__ needs a newer
torch than Debian's 1.13, so the packages are registered without running their __init__ and only
the dataset module (and what it imports) is loaded.

    /usr/bin/python3 tools/megatron_read_dataset.py PREFIX [EXPECTED_SEQUENCES]
"""
import importlib.util
import os
import sys
import types

spec = importlib.util.find_spec("megatron")
if spec is None:
    sys.exit("megatron-core is not installed: pip install --no-deps megatron-core")
root = list(spec.submodule_search_locations)[0]
for name, path in (("megatron", root), ("megatron.core", os.path.join(root, "core")),
                   ("megatron.core.datasets", os.path.join(root, "core", "datasets"))):
    mod = types.ModuleType(name)
    mod.__path__ = [path]
    sys.modules[name] = mod
# The two helpers indexed_dataset.py takes from modules that pull in all of megatron.core:
utils = types.ModuleType("megatron.core.utils")
utils.log_single_rank = lambda logger, level, msg, *a, **k: logger.log(level, msg, *a, **k)
sys.modules["megatron.core.utils"] = utils
msc = types.ModuleType("megatron.core.msc_utils")


class MultiStorageClientFeature:  # object storage off: local files only
    @staticmethod
    def is_enabled():
        return False


msc.MultiStorageClientFeature = MultiStorageClientFeature
sys.modules["megatron.core.msc_utils"] = msc
from megatron.core.datasets.indexed_dataset import IndexedDataset  # noqa: E402

d = IndexedDataset(sys.argv[1])
print(len(d), "sequences; first:", list(d[0][:8]), "dtype", d[0].dtype)
if len(sys.argv) > 2 and len(d) != int(sys.argv[2]):
    sys.exit(f"expected {sys.argv[2]} sequences")
