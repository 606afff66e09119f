#!/usr/bin/env python3
"""Writes tests/fixtures/torch_bin/: checkpoints made by real torch.save (1.13 tested), for the
C++ .bin reader (src/checkpoint/torch_bin.h). The C++ tests hard-code the values written here.

  tiny.bin            OrderedDict with _metadata (as module.state_dict() returns): F32, F16, BF16,
                      F64, I64, I32, bool, a 0-d tensor, an empty tensor, a Parameter, and a view
                      `base[4:]` sharing base's storage at offset 4
  tiny_proto4.bin     two tensors saved with pickle_protocol=4 (FRAME, MEMOIZE, STACK_GLOBAL)
  noncontig.bin       a transposed tensor saved as-is (the reader must refuse it)
  deflate.bin         tiny.bin's entries re-zipped with DEFLATE (the reader must refuse it)
  malicious.bin       a hand-made pickle `os.system(...)` zipped like torch does (must be refused)
  sharded/            two shards (plain dicts, as transformers' shard_checkpoint writes) + index
  rope-bin/           tests/fixtures/model/rope re-saved as pytorch_model.bin (F32, plus the
                      rotary_emb.inv_freq buffers old HF checkpoints carry)
  rope-bin-sharded/   the same model in BF16 (Baichuan-13B's dtype) as two shards + index

Run: /usr/bin/python3 tools/reference/make_torch_bin_fixtures.py
"""
import collections
import io
import json
import os
import shutil
import zipfile

import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "torch_bin")
ROPE = os.path.join(ROOT, "tests", "fixtures", "model", "rope")


def with_metadata(sd):
    """An OrderedDict carrying _metadata like nn.Module.state_dict()'s (torch pickles it via BUILD)."""
    od = collections.OrderedDict(sd)
    meta = collections.OrderedDict([("", {"version": 1})])
    for name in sd:
        parts = name.split(".")[:-1]
        for i in range(1, len(parts) + 1):
            meta.setdefault(".".join(parts[:i]), {})
    od._metadata = meta
    return od


def tiny():
    base = torch.arange(10, dtype=torch.float32) * 0.5
    sd = collections.OrderedDict()
    sd["f32"] = torch.arange(12, dtype=torch.float32).reshape(3, 4) * 0.25 - 1
    sd["f16"] = torch.tensor([[1.0, -2.5], [0.125, 65504.0]], dtype=torch.float16)
    sd["bf16"] = torch.tensor([1.0, -0.5, 3.140625, -256.0], dtype=torch.bfloat16)
    sd["f64"] = torch.tensor([0.5, -1.25], dtype=torch.float64)
    sd["i64"] = torch.arange(5, dtype=torch.int64)
    sd["i32"] = torch.tensor([-7, 0, 7], dtype=torch.int32)
    sd["bool"] = torch.tensor([True, False, True])
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["param"] = torch.nn.Parameter(torch.tensor([2.0, -3.0]))
    sd["base"] = base
    sd["view"] = base[4:].view(2, 3)  # storage offset 4 into base's storage
    return with_metadata(sd)


def plain_zip(path, prefix, entries, method=zipfile.ZIP_STORED):
    """Zips ENTRIES (name -> bytes) under PREFIX/ the way torch lays them out."""
    with zipfile.ZipFile(path, "w", compression=method) as z:
        for name, data in entries.items():
            info = zipfile.ZipInfo(f"{prefix}/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            z.writestr(info, data)


def rezip_deflated(src, dst):
    """Copies SRC's entries into DST compressed with DEFLATE, under DST's stem as the prefix."""
    stem = os.path.splitext(os.path.basename(dst))[0]
    with zipfile.ZipFile(src) as z:
        entries = {n.split("/", 1)[1]: z.read(n) for n in z.namelist()}
    plain_zip(dst, stem, entries, zipfile.ZIP_DEFLATED)


def malicious_pickle():
    """PROTO 2; GLOBAL 'os system'; the command; TUPLE1; REDUCE; STOP -- what torch.load would run."""
    cmd = b"echo chuanspeed-test-must-never-run"
    return (b"\x80\x02" + b"cos\nsystem\n" + b"X" + len(cmd).to_bytes(4, "little") + cmd +
            b"\x85" + b"R" + b".")


def save_sharded(dir, shards, config):
    """Saves SHARDS (a list of dicts) as pytorch_model-0000i-of-0000n.bin + index, like
    transformers' save_pretrained does for a checkpoint over max_shard_size."""
    os.makedirs(dir, exist_ok=True)
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        name = f"pytorch_model-{i + 1:05d}-of-{len(shards):05d}.bin"
        torch.save(dict(shard), os.path.join(dir, name))
        for k, v in shard.items():
            weight_map[k] = name
            total += v.numel() * v.element_size()
    with open(os.path.join(dir, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    with open(os.path.join(dir, "config.json"), "w") as f:
        f.write(config)


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    torch.save(tiny(), os.path.join(OUT, "tiny.bin"))
    torch.save(collections.OrderedDict(a=torch.tensor([1.5, -2.0]), b=torch.ones(2, 2, dtype=torch.float16)),
               os.path.join(OUT, "tiny_proto4.bin"), pickle_protocol=4)
    torch.save({"t": torch.arange(6, dtype=torch.float32).reshape(2, 3).t()},
               os.path.join(OUT, "noncontig.bin"))
    rezip_deflated(os.path.join(OUT, "tiny.bin"), os.path.join(OUT, "deflate.bin"))
    plain_zip(os.path.join(OUT, "malicious.bin"), "malicious",
              {"data.pkl": malicious_pickle(), "version": b"3\n"})

    save_sharded(os.path.join(OUT, "sharded"),
                 [{"a": torch.tensor([1.0, 2.0, 3.0]), "b": torch.tensor([[0.5, -0.5]], dtype=torch.bfloat16)},
                  {"c": torch.tensor([-1.0, 0.25], dtype=torch.float16)}],
                 '{"hidden_size": 2}\n')

    weights = load_file(os.path.join(ROPE, "model.safetensors"))
    with open(os.path.join(ROPE, "config.json")) as f:
        config = f.read()
    cfg = json.loads(config)
    head_dim = cfg["hidden_size"] // cfg["num_attention_heads"]
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    sd = collections.OrderedDict()
    for name, t in weights.items():
        sd[name] = t
        if name.endswith("self_attn.W_pack.weight"):
            sd[name.replace("W_pack.weight", "rotary_emb.inv_freq")] = inv_freq.clone()
    single = os.path.join(OUT, "rope-bin")
    os.makedirs(single)
    torch.save(with_metadata(sd), os.path.join(single, "pytorch_model.bin"))
    shutil.copy(os.path.join(ROPE, "config.json"), single)

    bf16 = {k: v.to(torch.bfloat16) for k, v in weights.items()}
    names = list(bf16)
    half = len(names) // 2
    save_sharded(os.path.join(OUT, "rope-bin-sharded"),
                 [{k: bf16[k] for k in names[:half]}, {k: bf16[k] for k in names[half:]}], config)

    total = 0
    for dirpath, _, files in os.walk(OUT):
        for fn in files:
            total += os.path.getsize(os.path.join(dirpath, fn))
    print(f"wrote {os.path.relpath(OUT, ROOT)} ({total} bytes)")


if __name__ == "__main__":
    main()
