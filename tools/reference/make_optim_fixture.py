#!/usr/bin/env python3
"""Writes tests/fixtures/optim/adamw.safetensors: three AdamW steps of torch.optim.AdamW (the
reference the C++ AdamW op must equal) on a weight matrix (decayed) and a norm vector (not
decayed, as Megatron's param groups do), with fresh gradients each step.

Run: /usr/bin/python3 tools/reference/make_optim_fixture.py
"""
import os
import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "tests", "fixtures", "optim", "adamw.safetensors")
LR, BETAS, EPS, WD, STEPS = 3e-3, (0.9, 0.95), 1e-8, 0.1, 3

torch.manual_seed(0)
w = torch.randn(7, 5, dtype=torch.float32)
n = 1 + 0.1 * torch.randn(5, dtype=torch.float32)
grads = [(torch.randn(7, 5) * 10 ** (i - 1), torch.randn(5) * 0.3) for i in range(STEPS)]
out = {"w.init": w.clone(), "norm.init": n.clone()}
pw, pn = torch.nn.Parameter(w.clone()), torch.nn.Parameter(n.clone())
opt = torch.optim.AdamW([{"params": [pw], "weight_decay": WD}, {"params": [pn], "weight_decay": 0.0}],
                        lr=LR, betas=BETAS, eps=EPS, foreach=False)
for i, (gw, gn) in enumerate(grads):
    pw.grad, pn.grad = gw.clone(), gn.clone()
    opt.step()
    out[f"w.grad{i}"], out[f"norm.grad{i}"] = gw, gn
out["w.final"], out["norm.final"] = pw.detach().clone(), pn.detach().clone()
out["w.exp_avg"] = opt.state[pw]["exp_avg"].clone()
out["w.exp_avg_sq"] = opt.state[pw]["exp_avg_sq"].clone()
os.makedirs(os.path.dirname(OUT), exist_ok=True)
save_file({k: v.contiguous() for k, v in out.items()}, OUT,
          metadata={"lr": str(LR), "beta1": str(BETAS[0]), "beta2": str(BETAS[1]), "eps": str(EPS),
                    "weight_decay": str(WD), "steps": str(STEPS), "torch": torch.__version__})
print("wrote", os.path.normpath(OUT))
