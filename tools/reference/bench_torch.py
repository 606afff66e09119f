#!/usr/bin/env python3
"""PyTorch throughput baseline for `make bench`: forward + backward of the mean cross-entropy loss
of the reference Baichuan model (tools/reference/baichuan_ref.py) in float32 on the CPU.

    /usr/bin/python3 tools/reference/bench_torch.py --hidden 512 --layers 8 --heads 8 --ffn 1376 \
        --vocab 32000 --seq 512 --batch 4 --threads 2 --iters 5 --position rope|alibi

One warm-up step, then --iters timed steps (zero grads, forward, loss, backward); prints ONE JSON
line: {"impl": "pytorch", "torch": ..., "threads": n, "tokens_per_s": median, "step_s_median": ...,
"gflops_per_s": ...} plus the config. Attention is plain matmul + softmax (torch 1.13 has no
scaled_dot_product_attention), exactly as the reference computes it.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from baichuan_ref import BaichuanConfig, BaichuanForCausalLM  # noqa: E402


def model_flops(b, t, d, layers, f, v):
    """Model FLOPs of one fwd+bwd step: 3 x forward (backward = 2 x forward).

    forward = 2 * B * T * (matmul parameters: L * (3D*D [W_pack] + D*D [o_proj] + 3*D*F [MLP])
                           + V*D [lm_head])
            + 2 * 2 * B * L * T * T * D   (Q K^T and P V, counted over the full T x T square,
                                           not the causal half; ChuanSpeed's C++ bench uses the
                                           same formula)
    The embedding lookup, norms, softmax and elementwise ops are not counted."""
    matmul_params = layers * (3 * d * d + d * d + 3 * d * f) + v * d
    forward = 2 * b * t * matmul_params + 2 * 2 * b * layers * t * t * d
    return 3 * forward


def main():
    ap = argparse.ArgumentParser(description="PyTorch fwd+bwd throughput of the reference Baichuan model")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--ffn", type=int, default=1376)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--position", choices=("rope", "alibi"), default="rope")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", action="store_true",
                    help="time full training steps: also clip the grad norm to 1.0 and take an AdamW step")
    a = ap.parse_args()
    if a.iters < 1:
        ap.error("--iters must be >= 1")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cfg = BaichuanConfig(a.vocab, a.hidden, a.ffn, a.heads, a.layers, position=a.position,
                         max_seq_length=a.seq)
    model = BaichuanForCausalLM(cfg).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02)
    seq = torch.randint(0, a.vocab, (a.batch, a.seq + 1))
    tokens, targets = seq[:, :-1].contiguous(), seq[:, 1:].contiguous()

    decay = [p for n, p in model.named_parameters() if not n.endswith("norm.weight")]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("norm.weight")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-4, betas=(0.9, 0.95))

    def step():
        model.zero_grad(set_to_none=False)
        loss = model.loss(tokens, targets)
        loss.backward()
        if a.train:  # what a Megatron training iteration adds: clipping and the optimizer
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        return loss.item()

    loss = step()                                      # warm-up
    times = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    flops = model_flops(a.batch, a.seq, a.hidden, a.layers, a.ffn, a.vocab)
    print(json.dumps({
        "impl": "pytorch", "bench": "train" if a.train else "model", "position": a.position,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "tokens_per_s": a.batch * a.seq / med, "step_s_median": med,
        "gflops_per_s": flops / med / 1e9,
        "model_gflops_per_step": flops / 1e9, "loss": loss,
        "config": {"hidden": a.hidden, "layers": a.layers, "heads": a.heads, "ffn": a.ffn,
                   "vocab": a.vocab, "seq": a.seq, "batch": a.batch, "position": a.position,
                   "iters": a.iters, "dtype": "float32"},
    }))


if __name__ == "__main__":
    main()
