#!/usr/bin/env python3
"""PyTorch throughput baseline for `make bench`: forward + backward of the mean cross-entropy loss
of the reference Baichuan model (tools/reference/baichuan_ref.py) on the CPU, set up as a PyTorch
2.x user would: F.scaled_dot_product_attention (causal, or ALiBi's bias as the mask; with
--compile on a GPU, ALiBi through FlexAttention's score_mod and a causal block mask),
F.cross_entropy, AdamW(fused=True), and with --bf16 torch.autocast("cpu", torch.bfloat16) over
the forward and the loss (fp32 master weights: the parameters stay fp32, as in AMP).

    python tools/reference/bench_torch.py --hidden 512 --layers 8 --heads 8 --ffn 1376 \
        --vocab 32000 --seq 512 --batch 4 --threads 2 --iters 5 --position rope|alibi \
        [--train] [--bf16] [--compile]

One warm-up step (two with --compile), then --iters timed steps (zero grads, then forward, loss
and backward for each of --micro-batches micro-batches; with --train also clipping and the
optimizer step); prints ONE JSON line: {"impl":
"pytorch", "torch": ..., "precision": ..., "threads": n, "tokens_per_s": median, "step_s_median":
..., "gflops_per_s": ..., "peak_rss_mib": ...} plus the config. On a torch without
scaled_dot_product_attention (Debian's 1.13) the attention is the reference's matmul + softmax and
the optimizer the plain AdamW; the JSON says which ("attention", "fused_adamw").
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import baichuan_ref  # noqa: E402
from baichuan_ref import BaichuanConfig, BaichuanForCausalLM  # noqa: E402

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")
try:  # PyTorch >= 2.5: FlexAttention, a fused kernel for score modifications such as ALiBi's bias
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
except ImportError:
    flex_attention = None
FLEX = {}  # ALiBi under --compile: the slopes and the causal block mask, set up in main()


def flex_alibi_attention(q, k, v):
    """Causal attention with ALiBi's bias slope_h * (j - i) as a FlexAttention score_mod (the
    bias of a row differs from Baichuan's slope_h * j by a constant, which softmax cancels), the
    upper triangle skipped through a block mask: PyTorch's fused path for ALiBi (SDPA's flash
    kernel takes no bias; with a float mask it runs its slower memory-efficient one)."""
    slopes = FLEX["slopes"]

    def alibi(score, b, h, q_idx, kv_idx):
        return score + slopes[h] * (kv_idx - q_idx)

    return flex_attention(q, k, v, score_mod=alibi, block_mask=FLEX["mask"])


def sdpa_attention_forward(self, x, position_bias):
    """The reference's attention with F.scaled_dot_product_attention (PyTorch 2.x): is_causal for
    RoPE, the [H, T, T] ALiBi bias (with -inf above the diagonal) as a float mask."""
    cfg = self.cfg
    b, t, d = x.shape
    h, hd = cfg.num_attention_heads, cfg.head_dim
    q, k, v = self.W_pack(x).split(d, dim=-1)
    q, k, v = (z.view(b, t, h, hd).transpose(1, 2) for z in (q, k, v))
    if position_bias[0] == "rope":
        _, cos, sin = position_bias
        q, k = baichuan_ref.apply_rope(q, cos, sin), baichuan_ref.apply_rope(k, cos, sin)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    elif FLEX:
        out = flex_alibi_attention(q, k, v)
    else:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=position_bias[1].to(q.dtype))
    return self.o_proj(out.transpose(1, 2).reshape(b, t, d))


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
    ap.add_argument("--micro-batches", type=int, default=1,
                    help="forward/backward passes per step, their gradients accumulated (a global batch)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--position", choices=("rope", "alibi"), default="rope")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", action="store_true",
                    help="time full training steps: also clip the grad norm to 1.0 and take an AdamW step")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast over the forward and the loss")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cuda: the GPU peer of bench/gpu_check.sh (SDPA picks its flash kernel for RoPE)")
    a = ap.parse_args()
    if a.iters < 1:
        ap.error("--iters must be >= 1")
    if a.micro_batches < 1:
        ap.error("--micro-batches must be >= 1")
    if HAS_SDPA:
        baichuan_ref.Attention.forward = sdpa_attention_forward

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cfg = BaichuanConfig(a.vocab, a.hidden, a.ffn, a.heads, a.layers, position=a.position,
                         max_seq_length=a.seq)
    dev = torch.device(a.device)
    model = BaichuanForCausalLM(cfg).float().to(dev)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02)
    seq = torch.randint(0, a.vocab, (a.batch, a.seq + 1), device=dev)
    tokens, targets = seq[:, :-1].contiguous(), seq[:, 1:].contiguous()

    decay = [p for n, p in model.named_parameters() if not n.endswith("norm.weight")]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("norm.weight")]
    groups = [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
    fused = True
    try:
        opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), fused=True)
    except (TypeError, RuntimeError):  # torch < 2.4 on the CPU
        fused = False
        opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95))
    forward = torch.compile(model) if a.compile else model
    # ALiBi under --compile on a GPU: FlexAttention (it needs compiling to be fused; eager, it is a
    # slow reference; its backward has no CPU kernel). The JSON's "attention" says which ran.
    if a.compile and a.position == "alibi" and a.device == "cuda" and flex_attention is not None:
        FLEX["slopes"] = torch.tensor(baichuan_ref.alibi_slopes(a.heads), dtype=torch.float32, device=dev)
        FLEX["mask"] = create_block_mask(lambda b, h, q_idx, kv_idx: q_idx >= kv_idx, None, None, a.seq, a.seq,
                                         device=a.device)
        # The [H, T, T] bias (2.7 GB in f32 at 40 x 4096^2) is not built: FlexAttention adds its own.
        model.model.position_bias = lambda t, dtype, device: ("alibi", None)

    def loss_of():
        with torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.bf16):
            logits = forward(tokens)
            return F.cross_entropy(logits.view(-1, a.vocab).float(), targets.reshape(-1))

    def step():
        model.zero_grad(set_to_none=False)
        for _ in range(a.micro_batches):  # the gradient of the mean loss over the global batch
            loss = loss_of()
            (loss / a.micro_batches).backward()
        if a.train:  # what a Megatron training iteration adds: clipping and the optimizer
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        return loss.item()

    loss = step()                                      # warm-up
    if a.compile:
        loss = step()
    times = []
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    if a.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(a.iters):
        sync()
        t0 = time.perf_counter()
        loss = step()  # .item() waits for the step's work too
        sync()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    flops = a.micro_batches * model_flops(a.batch, a.seq, a.hidden, a.layers, a.ffn, a.vocab)
    print(json.dumps({
        "impl": "pytorch", "bench": "train" if a.train else "model", "position": a.position,
        "precision": "bf16" if a.bf16 else "fp32", "compile": a.compile,
        "attention": "flex" if FLEX else "sdpa" if HAS_SDPA else "matmul+softmax", "fused_adamw": fused,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "device": a.device,
        "gpu": torch.cuda.get_device_name() if a.device == "cuda" else None,
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if a.device == "cuda" else None,
        "tokens_per_s": a.micro_batches * a.batch * a.seq / med, "step_s_median": med,
        "micro_batches": a.micro_batches,
        "gflops_per_s": flops / med / 1e9,
        "model_gflops_per_step": flops / 1e9, "loss": loss,
        "config": {"hidden": a.hidden, "layers": a.layers, "heads": a.heads, "ffn": a.ffn,
                   "vocab": a.vocab, "seq": a.seq, "batch": a.batch, "position": a.position,
                   "iters": a.iters, "dtype": "bfloat16 autocast" if a.bf16 else "float32"},
    }))


if __name__ == "__main__":
    main()
