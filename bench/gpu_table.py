#!/usr/bin/env python3
"""The benchmark table of a bench/gpu_check.sh run, from its gpu_check.jsonl, as Markdown for
docs/performance.md: per model shape, each ChuanSpeed run (the default attention kernels, and those
the check ran with CS_CUDA_ATTENTION) and PyTorch eager / torch.compile, with model TFLOP/s
(Megatron's formula, both sides), tokens/s, memory and the ratio to PyTorch's best; then where a
ChuanSpeed step's time goes (GEMMs' and attention's own TFLOP/s). Standard library only.
Usage: bench/gpu_table.py gpu_check.jsonl"""
import json
import sys


def rows(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass  # a line cut short by a step that ran out of time
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    recs = rows(sys.argv[1])
    ours = [r for r in recs if r.get("bench") == "gpu_train"]
    peers = [r for r in recs if r.get("impl") == "pytorch" and r.get("bench") == "train"]
    rates = {r["label"]: r for r in recs if r.get("bench") == "profile_rates"}
    gpu = next((p["gpu"] for p in peers if p.get("gpu")), None)
    micro = ours[0].get("micro_batches", 1) if ours else "?"
    print(f"GPU: {gpu or 'see summary.md'}; bf16, seq 4096, micro-batch 1, {micro} micro-batches a step, "
          f"{ours[0]['layers'] if ours else '?'} layers; step = forward and backward of each micro-batch, "
          f"clipping, AdamW\n")
    print("| shape | run | model TFLOP/s | tokens/s | memory MiB | vs PyTorch's best |")
    print("|---|---|---|---|---|---|")
    for pos, shape in (("rope", "Baichuan-7B (RoPE)"), ("alibi", "Baichuan-13B (ALiBi)")):
        mine = [r for r in ours if r.get("position") == pos]
        theirs = [p for p in peers if p.get("position") == pos]
        best = max((p["tokens_per_s"] for p in theirs), default=None)
        for r in mine:
            ratio = f"{r['tokens_per_s'] / best:.2f}x" if best else "-"
            print(f"| {shape} | ChuanSpeed `{r['impl']}` | {r['model_tflops']:.0f} | {r['tokens_per_s']:.0f} | "
                  f"{r['peak_mib']} (model and optimizer) | {ratio} |")
        for p in theirs:
            name = "PyTorch " + ("torch.compile" if p.get("compile") else "eager") + f" {p.get('torch', '')}"
            print(f"| {shape} | {name} | {p['gflops_per_s'] / 1000:.0f} | {p['tokens_per_s']:.0f} | "
                  f"{p['peak_gpu_mib']:.0f} (peak allocated) | |")
    if rates:
        print("\n| run | GEMM TFLOP/s | attention TFLOP/s (formula's count) | attention TFLOP/s (causal work) |")
        print("|---|---|---|---|")
        for label, r in rates.items():
            print(f"| `{label}` | {r['gemm_tflops']:.0f} | {r['attention_tflops_counted']:.0f} | "
                  f"{r['attention_tflops_causal']:.0f} |")


if __name__ == "__main__":
    main()
