"""Loads megatron.core.datasets.indexed_dataset from a `pip install --no-deps megatron-core` on
Debian's torch 1.13. megatron.core's package __init__ needs a newer torch, so the packages are
registered without running their __init__ and only the dataset module (and what it imports) is
loaded. Import this module, then `from megatron.core.datasets.indexed_dataset import ...`.
"""
import importlib.util
import os
import sys
import types

spec = importlib.util.find_spec("megatron")
if spec is None:
    raise SystemExit("megatron-core is not installed: pip install --no-deps megatron-core")
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
