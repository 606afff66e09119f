#!/usr/bin/env python3
"""Re-loads the committed fixtures and checks that the float64 reference reproduces them.

    /usr/bin/python3 tools/reference/check_fixtures.py [--fixtures tests/fixtures] [--bytes]

Checks: each model/<pos>/ dir loads through its config.json (position type inferred the way
ChuanSpeed does), the reference's logits, loss and every gradient match golden.safetensors to
float32 rounding, every gradient is nonzero; each eval/ variant holds the same weights as its
model/ dir (rounded to its dtype), the shard index is consistent, and expected.json is
reproduced. With --bytes it also regenerates everything into a temporary dir and compares
bytes (make_fixtures.py is deterministic). Exit status 0 when all hold.
"""
import argparse
import filecmp
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from baichuan_ref import BaichuanConfig, BaichuanForCausalLM, param_names, token_nll  # noqa: E402

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def load_dir(d):
    """config + weights of a HF dir (one file or sharded with an index)."""
    with open(os.path.join(d, "config.json")) as f:
        hf = json.load(f)
    index = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            idx = json.load(f)
        w = {}
        for fname in sorted(set(idx["weight_map"].values())):
            part = load_file(os.path.join(d, fname))
            for n in part:
                check(idx["weight_map"].get(n) == fname, f"{d}: index maps {n} to {fname}")
            w.update(part)
        total = sum(t.numel() * t.element_size() for t in w.values())
        check(idx["metadata"]["total_size"] == total, f"{d}: index total_size {total}")
    else:
        w = load_file(os.path.join(d, "model.safetensors"))
    return hf, w


def build(hf, w):
    cfg = BaichuanConfig.from_hf(hf)
    m = BaichuanForCausalLM(cfg).double()
    m.load_state_dict({n: t.to(torch.float64) for n, t in w.items()}, strict=True)
    return cfg, m


def close(a, b, rtol=2e-6):
    """a (float64) matches b (float32) to float32 rounding, relative to b's largest entry."""
    a, b = a.double(), b.double()
    return bool(((a - b).abs() <= rtol * b.abs().max() + 1e-12).all())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default=os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests", "fixtures"))
    ap.add_argument("--bytes", action="store_true", help="also regenerate and compare bytes")
    args = ap.parse_args()
    fx = args.fixtures

    models = {}
    for pos in ("rope", "alibi"):
        d = os.path.join(fx, "model", pos)
        hf, w = load_dir(d)
        cfg, m = build(hf, w)
        models[pos] = w
        check(cfg.position == pos, f"model/{pos}: config.json reads as {cfg.position}")
        check(all(t.dtype == torch.float32 for t in w.values()), f"model/{pos}: weights F32")
        check(sorted(w) == sorted(param_names(cfg)), f"model/{pos}: parameter names")
        g = load_file(os.path.join(d, "golden.safetensors"))
        tok, tgt = g["tokens"].long(), g["targets"].long()
        check(g["tokens"].dtype == torch.int32 and g["targets"].dtype == torch.int32, f"model/{pos}: I32 ids")
        logits = m(tok)
        loss = token_nll(logits, tgt).sum() / (tgt != -1).sum()
        loss.backward()
        check(close(logits.detach(), g["logits"]), f"model/{pos}: logits")
        check(abs(loss.item() - g["loss"].item()) < 1e-6 and torch.isfinite(loss).item(),
              f"model/{pos}: loss {loss.item():.8f}")
        for n, p in m.named_parameters():
            gw = g["grad." + n]
            check(gw.shape == p.shape and close(p.grad, gw) and gw.abs().max() > 0, f"model/{pos}: grad.{n}")

    with open(os.path.join(fx, "eval", "docs.json")) as f:
        docs = json.load(f)
    with open(os.path.join(fx, "eval", "expected.json")) as f:
        expected = json.load(f)
    variants = {"rope": ("rope", torch.float32), "alibi": ("alibi", torch.float32),
                "rope-f32-sharded": ("rope", torch.float32), "alibi-bf16": ("alibi", torch.bfloat16),
                "rope-f16": ("rope", torch.float16)}
    n = docs["seq_length"]
    for name, (pos, dtype) in variants.items():
        d = os.path.join(fx, "model", name) if name in ("rope", "alibi") else os.path.join(fx, "eval", name)
        hf, w = load_dir(d)
        check(all(t.dtype == dtype for t in w.values()), f"eval/{name}: weights {dtype}")
        check(all(torch.equal(w[k], models[pos][k].to(dtype)) for k in w) and sorted(w) == sorted(models[pos]),
              f"eval/{name}: the model/{pos} weights as {dtype}")
        _, m = build(hf, w)
        rows = expected[name]
        check(len(rows) == len(docs["docs"]), f"eval/{name}: one row per document")
        with torch.no_grad():
            for i, (doc, row) in enumerate(zip(docs["docs"], rows)):
                ids = torch.tensor(doc[: n + 1])
                k = len(ids) - 1 if len(ids) > 1 else 0
                loss = token_nll(m(ids[None, :-1]), ids[None, 1:]).mean().item() if k else 0.0
                check(row["doc"] == i and row["tokens"] == k and abs(row["loss"] - loss) < 1e-12,
                      f"eval/{name}: doc {i} ({k} targets) loss {loss:.8f}")

    if args.bytes:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, os.path.join(HERE, "make_fixtures.py"), "--out", tmp],
                           check=True, stdout=subprocess.DEVNULL)
            for root, _, files in os.walk(fx):
                for f in files:
                    a = os.path.join(root, f)
                    b = os.path.join(tmp, os.path.relpath(a, fx))
                    check(os.path.exists(b) and filecmp.cmp(a, b, shallow=False),
                          f"regenerated {os.path.relpath(a, fx)} is byte-identical")

    print(f"{len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
