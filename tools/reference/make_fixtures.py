#!/usr/bin/env python3
"""Writes the committed test fixtures under tests/fixtures/ from the float64 PyTorch reference.

    /usr/bin/python3 tools/reference/make_fixtures.py [--out tests/fixtures]

Deterministic (fixed seeds, CPU float64): rerunning it rewrites identical bytes.

tests/fixtures/model/{rope,alibi}/   tiny HF Baichuan dirs (config.json, model.safetensors F32) and
                                     golden.safetensors: tokens, targets, logits, loss and
                                     grad.<hf name> for every parameter (float64 math, stored F32)
tests/fixtures/eval/                 rope-f32-sharded/, alibi-bf16/, rope-f16/ (the same weights,
                                     other storage), docs.json and expected.json (per-document
                                     float64 losses for the eval command)

Every expected value is computed from the weights exactly as stored: the float64 draw is first
rounded to the stored dtype (F32, BF16 or F16) and that value, upcast to float64, is used.
"""
import argparse
import json
import os
import sys
import time

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from baichuan_ref import BaichuanConfig, BaichuanForCausalLM, param_names, token_nll  # noqa: E402

VOCAB, HIDDEN, HEADS, FFN, LAYERS, EPS, MAX_LEN = 101, 48, 3, 80, 2, 1e-6, 64
BATCH, SEQ = 2, 17                 # golden batch: tokens/targets [2, 17]
EVAL_N = 12                        # eval seq_length
EVAL_DOC_LENGTHS = [5, 13, 1, 30, 12, 2, 14]
SEED = {"rope": 1234, "alibi": 5678, "golden": 42, "docs": 7}

DTYPE_NAME = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def hf_config(position, dtype):
    """A config.json as a real HF Baichuan config reads (7B-style for RoPE, 13B-style for ALiBi)."""
    cfg = {
        "architectures": ["BaichuanForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_baichuan.BaichuanConfig",
                     "AutoModelForCausalLM": "modeling_baichuan.BaichuanForCausalLM"},
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": FFN,
        "model_type": "baichuan",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "pad_token_id": 0,
        "rms_norm_eps": EPS,
        "tie_word_embeddings": False,
        "torch_dtype": DTYPE_NAME[dtype],
        "transformers_version": "4.29.2",
        "use_cache": True,
        "vocab_size": VOCAB,
    }
    if position == "rope":
        cfg["max_position_embeddings"] = MAX_LEN       # Baichuan-7B: RoPE, base 10000 (default)
    else:
        cfg["model_max_length"] = MAX_LEN              # Baichuan-13B: ALiBi, no max_position_embeddings
    return dict(sorted(cfg.items()))


def draw_weights(cfg, seed):
    """float64 weights: embedding N(0, 1), matrices N(0, 0.1^2), norms 1 + 0.1 N(0, 1).
    Logits come out O(1) (std ~0.7)."""
    g = torch.Generator().manual_seed(seed)
    ref = BaichuanForCausalLM(cfg)
    shapes = {n: p.shape for n, p in ref.named_parameters()}
    w = {}
    for name in param_names(cfg):
        shape = shapes[name]
        z = torch.randn(shape, generator=g, dtype=torch.float64)
        if name.endswith("layernorm.weight") or name == "model.norm.weight":
            w[name] = 1.0 + 0.1 * z
        elif name == "model.embed_tokens.weight":
            w[name] = z
        else:
            w[name] = 0.1 * z
    return w


def as_stored(weights, dtype):
    """Rounds each tensor to `dtype` (what the file holds)."""
    return {n: t.to(dtype).contiguous() for n, t in weights.items()}


def build(cfg, weights):
    """A float64 reference model holding `weights` (any float dtype, upcast)."""
    m = BaichuanForCausalLM(cfg).double()
    sd = {n: t.to(torch.float64) for n, t in weights.items()}
    missing, unexpected = m.load_state_dict(sd, strict=True)
    assert not missing and not unexpected
    return m


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def save(path, tensors):
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata={"format": "pt"})


def golden(cfg, model, seed):
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(0, VOCAB, (BATCH, SEQ + 1), generator=g)
    tokens, targets = seq[:, :SEQ].clone(), seq[:, 1:].clone()
    targets[1, -2:] = -1                                         # ignored positions
    model.zero_grad()
    logits = model(tokens)
    nll = token_nll(logits, targets)
    loss = nll.sum() / (targets != -1).sum()
    loss.backward()
    out = {"tokens": tokens.to(torch.int32), "targets": targets.to(torch.int32),
           "logits": logits.detach().to(torch.float32),
           "loss": loss.detach().reshape(1).to(torch.float32)}
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, name
        out["grad." + name] = p.grad.to(torch.float32)
    return out, loss.item()


def doc_losses(model, docs, n):
    """Per document: inputs tokens[0:n], targets tokens[1:n+1] (fewer if the document is shorter)."""
    res = []
    with torch.no_grad():
        for i, d in enumerate(docs):
            ids = torch.tensor(d[: n + 1], dtype=torch.int64)
            if len(ids) < 2:
                res.append({"doc": i, "tokens": 0, "loss": 0.0})
                continue
            nll = token_nll(model(ids[None, :-1]), ids[None, 1:])
            res.append({"doc": i, "tokens": int(len(ids) - 1), "loss": float(nll.mean().item())})
    return res


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures"))
    args = ap.parse_args()
    t0 = time.time()
    torch.manual_seed(0)   # nothing below draws from the global generator; fixed anyway

    stored = {}            # position -> F32 weights, as model/<position>/model.safetensors holds them
    for position in ("rope", "alibi"):
        d = os.path.join(args.out, "model", position)
        os.makedirs(d, exist_ok=True)
        hf = hf_config(position, torch.float32)
        cfg = BaichuanConfig.from_hf(hf)
        assert cfg.position == position
        w32 = as_stored(draw_weights(cfg, SEED[position]), torch.float32)
        stored[position] = (hf, cfg, w32)
        write_json(os.path.join(d, "config.json"), hf)
        save(os.path.join(d, "model.safetensors"), w32)
        g, loss = golden(cfg, build(cfg, w32), SEED["golden"])
        save(os.path.join(d, "golden.safetensors"), g)
        print(f"model/{position}: loss {loss:.10f}, {len(g) - 4} gradients")

    # eval/: the same weights stored other ways.
    ev = os.path.join(args.out, "eval")
    os.makedirs(ev, exist_ok=True)
    variants = {}          # name -> (cfg, weights as stored)
    for position in ("rope", "alibi"):
        _, cfg, w32 = stored[position]
        variants[position] = (cfg, w32)

    # rope-f32-sharded: two shards + index (embedding and layer 0 | layer 1, norm, lm_head).
    hf, cfg, w32 = stored["rope"]
    d = os.path.join(ev, "rope-f32-sharded")
    os.makedirs(d, exist_ok=True)
    write_json(os.path.join(d, "config.json"), hf)
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    first = [n for n in param_names(cfg) if n == "model.embed_tokens.weight" or n.startswith("model.layers.0.")]
    shards = [{n: w32[n] for n in first}, {n: t for n, t in w32.items() if n not in first}]
    weight_map = {}
    for f, s in zip(files, shards):
        save(os.path.join(d, f), s)
        weight_map.update({n: f for n in s})
    total = sum(t.numel() * t.element_size() for t in w32.values())
    write_json(os.path.join(d, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})
    variants["rope-f32-sharded"] = (cfg, w32)

    for name, position, dtype in (("alibi-bf16", "alibi", torch.bfloat16), ("rope-f16", "rope", torch.float16)):
        _, cfg, w32 = stored[position]
        d = os.path.join(ev, name)
        os.makedirs(d, exist_ok=True)
        write_json(os.path.join(d, "config.json"), hf_config(position, dtype))
        w = as_stored(w32, dtype)
        save(os.path.join(d, "model.safetensors"), w)
        variants[name] = (cfg, w)

    g = torch.Generator().manual_seed(SEED["docs"])
    docs = [torch.randint(0, VOCAB, (n,), generator=g).tolist() for n in EVAL_DOC_LENGTHS]
    write_json(os.path.join(ev, "docs.json"), {"seq_length": EVAL_N, "docs": docs})
    expected = {}
    for name in ("rope", "alibi", "rope-f32-sharded", "alibi-bf16", "rope-f16"):
        cfg, w = variants[name]
        expected[name] = doc_losses(build(cfg, w), docs, EVAL_N)
    write_json(os.path.join(ev, "expected.json"), expected)
    for name, rows in expected.items():
        print(f"eval/{name}: " + ", ".join(f"{r['tokens']}:{r['loss']:.5f}" for r in rows))
    print(f"done in {time.time() - t0:.2f} s")


if __name__ == "__main__":
    main()
