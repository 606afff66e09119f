#!/usr/bin/python3
"""Expected GPT dataset indices, computed by Megatron-core's own code.

Writes tests/fixtures/megatron_indices/cases.json (the document, sample and shuffle indices of
every split of every dataset, and the blending indices, for small corpora, several seeds,
sequence lengths, sample counts from under one epoch to many epochs with and without a separate
final epoch, several --split strings and weighted blends) and numpy_random.json (raw MT19937
draws and RandomState.shuffle results that src/data/numpy_random.h must reproduce).

Nothing is reimplemented here: each case writes real MMIDIDX files with Megatron's
IndexedDatasetBuilder and runs BlendedMegatronDatasetBuilder(GPTDataset, ...).build(), the path
pretrain_gpt.py takes, then reads the arrays off the datasets it returns. The only stand-ins are
for imports the data code does not use for index building: megatron/core/__init__.py (it imports
the model-parallel code, which needs a newer torch than Debian's 1.13), megatron.core.utils
(log_single_rank only), megatron.core.tokenizers (a type name) and megatron.core.msc_utils
(object storage, off).

Run: /usr/bin/python3 tools/reference/megatron_indices.py [--out DIR] [--check]
  --check  regenerate into memory and compare with the committed fixtures (exit 1 on a difference)
Needs megatron-core (0.16.1 tested) importable, e.g. under /usr/local/lib/python3.11/dist-packages,
and torch (1.13 tested) and numpy (1.24 tested).
"""
import argparse
import json
import logging
import os
import sys
import tempfile
import types

import numpy

SITE = "/usr/local/lib/python3.11/dist-packages"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def import_megatron():
    """Imports megatron.core.datasets without running megatron/core/__init__.py."""
    if SITE not in sys.path:
        sys.path.append(SITE)
    import megatron  # noqa: F401  (the namespace package)

    spec_dir = None
    for p in sys.path:
        if os.path.isfile(os.path.join(p, "megatron", "core", "datasets", "gpt_dataset.py")):
            spec_dir = os.path.join(p, "megatron", "core")
            break
    if spec_dir is None:
        sys.exit("megatron-core not found: pip install megatron-core, or add it to PYTHONPATH")

    def stub(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        sys.modules[name] = m
        return m

    core = stub("megatron.core")
    core.__path__ = [spec_dir]

    def log_single_rank(logger, *args, rank=0, **kwargs):
        logger.log(*args, **kwargs)

    class NoObjectStorage:
        @staticmethod
        def is_enabled():
            return False

    stub("megatron.core.utils", log_single_rank=log_single_rank)
    stub("megatron.core.tokenizers", MegatronTokenizerBase=object)
    stub("megatron.core.msc_utils", MultiStorageClientFeature=NoObjectStorage)

    from megatron.core.datasets import gpt_dataset, indexed_dataset, utils
    from megatron.core.datasets import blended_megatron_dataset_builder as builder
    from megatron.core.datasets.blended_dataset import BlendedDataset

    try:
        from importlib.metadata import version

        mcore_version = version("megatron-core")
    except Exception:  # pragma: no cover
        mcore_version = "unknown"
    return types.SimpleNamespace(gpt=gpt_dataset, indexed=indexed_dataset, utils=utils,
                                 builder=builder, BlendedDataset=BlendedDataset,
                                 version=mcore_version, path=spec_dir)


class Tokenizer:
    """What GPTDatasetConfig reads from a tokenizer (the indices do not depend on it)."""

    vocab_size = None
    eod = 0
    unique_identifiers = {"class": "Tokenizer"}  # Megatron puts it in the cache description


def irregular(n, mul=7, add=3, mod=13):
    """Document lengths 0..mod-1 in a fixed irregular pattern (a few empty documents)."""
    return [(i * mul + add) % mod for i in range(n)]


# Each case: corpora (document lengths per dataset), the --data-path weights (None: one dataset
# given without a weight), --split, seed, seq_length and the samples asked of each split
# [train, valid, test], as Megatron's train_valid_test_num_samples.
CASES = [
    # One dataset, under one epoch for every split.
    dict(name="one_epoch", lengths=[irregular(40)], split="80,15,5", seed=1234, seq=5,
         sizes=[10, 2, 1]),
    # The default split over enough documents that the test split is not empty; its one
    # document needs several epochs for one sample.
    dict(name="split_949_50_1", lengths=[irregular(600)], split="949,50,1", seed=1234, seq=64,
         sizes=[40, 2, 1]),
    # Exactly one epoch of train samples ((T - 1) / seq); 98,2,0 leaves no test split.
    dict(name="split_98_2_0_odd_docs", lengths=[irregular(37, 5, 1, 11)], split="98,2,0",
         seed=1234, seq=4, sizes=[40, 3, 0]),
    # Two epochs, the second contributing few samples: kept apart (separate_final_epoch).
    dict(name="two_epochs_separate", lengths=[irregular(40)], split="100,0,0", seed=1234, seq=5,
         sizes=[51, 0, 0]),
    # Two epochs, the second contributing most of an epoch: shuffled together.
    dict(name="two_epochs_together", lengths=[irregular(40)], split="100,0,0", seed=1234, seq=5,
         sizes=[90, 0, 0]),
    # Many epochs (the train and valid final epochs kept apart, the test one not).
    dict(name="many_epochs_a", lengths=[irregular(23, 3, 2, 9)], split="70,20,10", seed=7,
         seq=3, sizes=[170, 12, 5]),
    dict(name="many_epochs_b", lengths=[irregular(23, 3, 2, 9)], split="70,20,10", seed=7,
         seq=3, sizes=[190, 30, 9]),
    # Other seeds, including the largest numpy accepts; the same corpus and request as one_epoch.
    dict(name="seed_1", lengths=[irregular(40)], split="80,15,5", seed=1, seq=5,
         sizes=[10, 2, 1]),
    dict(name="seed_max", lengths=[irregular(40)], split="80,15,5", seed=2**32 - 1, seq=5,
         sizes=[10, 2, 1]),
    # Even three-way split of an odd document count, and a short sequence over long documents.
    dict(name="split_1_1_1", lengths=[irregular(25, 11, 5, 31)], split="1,1,1", seed=99, seq=2,
         sizes=[60, 60, 60]),
    dict(name="long_docs", lengths=[[97, 3, 250, 1, 64, 0, 128, 33, 7, 300, 12]],
         split="8,2,1", seed=2024, seq=16, sizes=[80, 10, 5]),
    # One dataset given with a weight: Megatron builds a one-dataset blend (0.5% surplus).
    dict(name="one_weighted", lengths=[irregular(40)], weights=[1.0], split="80,15,5",
         seed=1234, seq=5, sizes=[30, 3, 1]),
    # Blends: two and three datasets, weights as typed on the command line.
    dict(name="blend_two", lengths=[irregular(40), irregular(31, 5, 4, 17)], weights=[0.3, 0.7],
         split="85,10,5", seed=1234, seq=4, sizes=[100, 10, 4]),
    dict(name="blend_three", lengths=[irregular(30), irregular(21, 5, 4, 17), irregular(50, 2, 1, 7)],
         weights=[2.0, 1.0, 1.0], split="80,12,8", seed=5, seq=3, sizes=[200, 20, 6]),
    dict(name="blend_thirds", lengths=[irregular(19), irregular(33, 5, 4, 17), irregular(27, 2, 1, 7)],
         weights=[1.0, 1.0, 1.0], split="90,10,0", seed=31337, seq=6, sizes=[75, 9, 0]),
]


def write_corpus(m, prefix, lengths):
    import torch

    b = m.indexed.IndexedDatasetBuilder(prefix + ".bin", dtype=numpy.int32)
    nxt = 0
    for n in lengths:
        b.add_item(torch.arange(nxt, nxt + n, dtype=torch.int32))
        b.end_document()
        nxt += n
    b.finalize(prefix + ".idx")


def gpt_record(ds):
    return {
        "begin": int(ds.indices[0]) if len(ds.indices) else None,
        "end": int(ds.indices[-1]) + 1 if len(ds.indices) else None,
        "num_samples_requested": int(ds.num_samples),
        "document_index": [int(x) for x in ds.document_index],
        "sample_index": [int(x) for x in numpy.asarray(ds.sample_index).reshape(-1)],
        "shuffle_index": [int(x) for x in ds.shuffle_index],
    }


def run_case(m, case, tmp):
    prefixes = []
    for d, lengths in enumerate(case["lengths"]):
        prefix = os.path.join(tmp, f"{case['name']}_{d}_text_document")
        write_corpus(m, prefix, lengths)
        prefixes.append(prefix)
    weights = case.get("weights")
    config = m.gpt.GPTDatasetConfig(
        random_seed=case["seed"], sequence_length=case["seq"],
        blend=(prefixes, None if weights is None else list(weights)), split=case["split"],
        tokenizer=Tokenizer(), reset_position_ids=False, reset_attention_mask=False,
        eod_mask_loss=False, path_to_cache=None)
    # Megatron loops forever on a split with no tokens (_get_num_epochs): refuse such a case.
    for i, bookends in enumerate(config.split_matrix):
        for lengths in case["lengths"]:
            if bookends is not None:
                beg, end = (int(round(x * float(len(lengths)))) for x in bookends)
                assert sum(lengths[beg:end]) >= 2, f"{case['name']}: split {i} has < 2 tokens"
    built = m.builder.BlendedMegatronDatasetBuilder(
        m.gpt.GPTDataset, case["sizes"], lambda: True, config).build()
    out = {k: case[k] for k in ("name", "split", "seed", "sizes")}
    out["seq_length"] = case["seq"]
    out["weights"] = weights
    out["lengths"] = case["lengths"]
    out["split_matrix"] = config.split_matrix
    out["splits"] = []
    for ds in built:
        if ds is None:
            out["splits"].append(None)
        elif isinstance(ds, m.BlendedDataset):
            out["splits"].append({
                "size": int(ds.size),
                "datasets": [gpt_record(x) for x in ds.datasets],
                "blend": {"weights": [float(w) for w in ds.weights],
                          "dataset_index": [int(x) for x in ds.dataset_index],
                          "dataset_sample_index": [int(x) for x in ds.dataset_sample_index]},
            })
        else:
            out["splits"].append({"size": len(ds), "datasets": [gpt_record(ds)], "blend": None})
    return out


def numpy_random_fixture():
    """Raw draws and shuffles from numpy's legacy RandomState (what Megatron's shuffles use)."""
    out = {"numpy_version": numpy.__version__, "raw": [], "shuffles": [], "intervals": []}
    for seed in [0, 1, 1234, 5489, 2**31, 2**32 - 1]:
        out["raw"].append({"seed": seed, "values": [
            int(x) for x in numpy.random.RandomState(seed)._bit_generator.random_raw(700)]})
    # Successive shuffles from one state, as Megatron's document then shuffle index do; int32,
    # uint32 and int64 arrays as Megatron's dtypes (numpy shuffles every dtype the same way).
    for seed, sizes in [(1234, [0, 1, 2, 3, 5, 17, 100]), (7, [1000, 64, 4097]),
                        (2**32 - 1, [33, 2, 257])]:
        rs = numpy.random.RandomState(seed)
        results = []
        for i, n in enumerate(sizes):
            a = numpy.arange(n, dtype=[numpy.int32, numpy.uint32, numpy.int64][i % 3])
            rs.shuffle(a)
            results.append([int(x) for x in a])
        out["shuffles"].append({"seed": seed, "sizes": sizes, "results": results})
    # Bounded draws above 2^32 (legacy randint's masked path is random_interval's 64-bit path:
    # two 32-bit draws, the first the high half).
    for seed in [3, 1234]:
        rs = numpy.random.RandomState(seed)
        maxes = [0, 1, 6, 2**31, 2**32 - 1, 2**32, 2**33 + 5, 2**40 - 1, 3 * 2**45 + 7, 2**62]
        vals = [int(rs.randint(0, mx + 1, dtype=numpy.int64)) for mx in maxes]
        out["intervals"].append({"seed": seed, "maxes": maxes, "values": vals})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "megatron_indices"))
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    m = import_megatron()
    with tempfile.TemporaryDirectory() as tmp:
        cases = [run_case(m, c, tmp) for c in CASES]
    files = {
        "cases.json": {"generator": "tools/reference/megatron_indices.py",
                       "megatron_core": m.version, "numpy": numpy.__version__, "cases": cases},
        "numpy_random.json": numpy_random_fixture(),
    }
    bad = 0
    for name, obj in files.items():
        text = json.dumps(obj, separators=(",", ":")) + "\n"
        path = os.path.join(args.out, name)
        if args.check:
            # The content decides; the generators' versions (megatron-core, numpy) are printed, not
            # compared: numpy 2.x with megatron-core 0.16 makes the same indices as the fixtures'.
            with open(path) as f:
                committed = json.load(f)
            fresh = json.loads(text)
            versions = {k: (committed.pop(k, None), fresh.pop(k, None))
                        for k in ("megatron_core", "numpy", "numpy_version")}
            same = committed == fresh
            shown = ", ".join(f"{k} {a} (fixture) / {b} (now)" for k, (a, b) in versions.items() if a or b)
            print(f"{path}: {'same' if same else 'DIFFERS'}" + (f" [{shown}]" if shown else ""))
            bad += not same
        else:
            os.makedirs(args.out, exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
            print(f"wrote {path} ({len(text)} bytes)")
    for c in cases:
        desc = []
        for s in c["splits"]:
            if s is None:
                desc.append("-")
                continue
            g = s["datasets"][0]
            epochs = len(g["document_index"]) // max(1, g["end"] - g["begin"])
            desc.append(f"{s['size']} samples/{epochs} ep" + (" blend" if s["blend"] else ""))
        print(f"  {c['name']}: " + ", ".join(desc))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
