#!/usr/bin/env python3
"""An independent PyTorch reference of the Hugging Face Baichuan modelling code.

It reproduces the math of `BaichuanForCausalLM` as baichuan-inc's `modeling_baichuan.py` does it:

* Baichuan-7B (RoPE):   rotate-half rotary embedding on q and k, causal softmax attention.
* Baichuan-13B (ALiBi): no rotary embedding; the `_gen_alibi_mask` bias (slope_h * j for key
  position j <= query position i, -inf above the diagonal) is added to q.k/sqrt(Hd).

Both: RMSNorm (x * rsqrt(mean(x^2) + eps) * w), fused QKV projection `W_pack` [3D, D] whose rows
are q, then k, then v (each head-major: head h owns rows h*Hd .. h*Hd+Hd-1 of its third), o_proj,
SwiGLU MLP down(silu(gate(x)) * up(x)), pre-norm residual blocks, a final norm and an untied
lm_head. No biases anywhere.

The modules are nested like Hugging Face's, so `state_dict()` has exactly the HF names
(`model.embed_tokens.weight`, `model.layers.{i}.self_attn.W_pack.weight`, ..., `lm_head.weight`).
Any dtype works; the fixtures use float64 throughout. Differences from the HF code that do not
change the math: HF computes RMSNorm's variance and the RoPE/ALiBi tables in float32 and the
softmax in float32; here everything stays in the module's dtype (float64 for the fixtures).
The loss takes explicit targets and ignores target == -1 (HF shifts the labels itself and
ignores -100).

Only torch is needed. Written from the published modelling code's behaviour, not copied.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -1


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------
class BaichuanConfig:
    """The fields of a HF Baichuan config.json that the math needs."""

    def __init__(self, vocab_size, hidden_size, intermediate_size, num_attention_heads,
                 num_hidden_layers, rms_norm_eps=1e-6, position="rope", rope_theta=10000.0,
                 max_seq_length=4096):
        assert hidden_size % num_attention_heads == 0, "hidden_size must divide into heads"
        assert position in ("rope", "alibi"), position
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_attention_heads = num_attention_heads
        self.num_hidden_layers = num_hidden_layers
        self.rms_norm_eps = rms_norm_eps
        self.position = position
        self.rope_theta = rope_theta
        self.max_seq_length = max_seq_length
        self.head_dim = hidden_size // num_attention_heads
        if position == "rope":
            assert self.head_dim % 2 == 0, "RoPE needs an even head dim"

    @staticmethod
    def position_type(cfg):
        """RoPE or ALiBi from a HF config dict.

        An explicit `position_embedding_type` wins; else `model_max_length` without
        `max_position_embeddings` means ALiBi (how Baichuan-13B's config reads); else RoPE
        (Baichuan-7B's config has `max_position_embeddings`)."""
        if "position_embedding_type" in cfg:
            p = cfg["position_embedding_type"]
            return "rope" if p in ("rope", "rotary") else p
        if "model_max_length" in cfg and "max_position_embeddings" not in cfg:
            return "alibi"
        return "rope"

    @classmethod
    def from_hf(cls, cfg):
        position = cls.position_type(cfg)
        max_len = cfg.get("max_position_embeddings", cfg.get("model_max_length", 4096))
        return cls(vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"],
                   intermediate_size=cfg["intermediate_size"],
                   num_attention_heads=cfg["num_attention_heads"],
                   num_hidden_layers=cfg["num_hidden_layers"],
                   rms_norm_eps=cfg.get("rms_norm_eps", 1e-6), position=position,
                   rope_theta=cfg.get("rope_theta", 10000.0), max_seq_length=max_len)


# ----------------------------------------------------------------------------------------------
# Position encodings
# ----------------------------------------------------------------------------------------------
def alibi_slopes(n_heads):
    """Baichuan-13B's `_get_interleave`: the ALiBi slope of each head, as Python floats.

    For a power of two n: start = 2^(-2^-(log2(n) - 3)), slopes start^1 .. start^n.
    Otherwise: the slopes of the closest smaller power of two p, followed by the
    even-indexed slopes of 2p ([0::2]), the first n - p of them."""
    def power_of_2(n):
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))
        return [start * start ** i for i in range(n)]

    if math.log2(n_heads).is_integer():
        return power_of_2(n_heads)
    p = 2 ** math.floor(math.log2(n_heads))
    return power_of_2(p) + alibi_slopes(2 * p)[0::2][: n_heads - p]


def alibi_bias(n_heads, seq_len, dtype=torch.float64, device=None):
    """[H, T, T]: bias[h, i, j] = slope_h * j for j <= i, -inf for j > i (Baichuan-13B's
    `_gen_alibi_mask`: the same row for every query; within a row it differs from
    slope_h * (j - i) by a constant, which softmax ignores)."""
    slopes = torch.tensor(alibi_slopes(n_heads), dtype=dtype, device=device)
    j = torch.arange(seq_len, dtype=dtype, device=device)
    bias = slopes[:, None, None] * j[None, None, :]               # [H, 1, T]
    future = torch.full((seq_len, seq_len), float("-inf"), dtype=dtype, device=device).triu(1)
    return bias + future[None, :, :]                              # [H, T, T]


def rope_cos_sin(head_dim, seq_len, base=10000.0, dtype=torch.float64, device=None):
    """[T, Hd] cos and sin tables for positions 0..T-1 (Baichuan-7B's RotaryEmbedding):
    inv_freq = 1 / base^(arange(0, Hd, 2) / Hd), angle = pos * inv_freq, emb = cat(angle, angle)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=dtype, device=device) / head_dim))
    pos = torch.arange(seq_len, dtype=dtype, device=device)
    freqs = pos[:, None] * inv_freq[None, :]                      # [T, Hd/2]
    emb = torch.cat((freqs, freqs), dim=-1)                       # [T, Hd]
    return emb.cos(), emb.sin()


def rotate_half(x):
    """(x1, x2) -> (-x2, x1), halves of the last dim."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x, cos, sin):
    """x [B, H, T, Hd]; cos, sin [T, Hd]."""
    return x * cos + rotate_half(x) * sin


# ----------------------------------------------------------------------------------------------
# Layers (module and parameter names follow Hugging Face's)
# ----------------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden_size
        self.W_pack = nn.Linear(d, 3 * d, bias=False)   # rows: q, then k, then v
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x, position_bias):
        """x [B, T, D]; position_bias: ("rope", cos, sin) or ("alibi", bias [H, T, T])."""
        cfg = self.cfg
        b, t, d = x.shape
        h, hd = cfg.num_attention_heads, cfg.head_dim
        qkv = self.W_pack(x)                                          # [B, T, 3D]
        q, k, v = qkv.split(d, dim=-1)
        q, k, v = (z.view(b, t, h, hd).transpose(1, 2) for z in (q, k, v))   # [B, H, T, Hd]
        scores_bias = None
        if position_bias[0] == "rope":
            _, cos, sin = position_bias
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            causal = torch.full((t, t), float("-inf"), dtype=x.dtype, device=x.device).triu(1)
            scores_bias = causal                                      # [T, T]
        else:
            scores_bias = position_bias[1]                            # [H, T, T]
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd) + scores_bias
        probs = torch.softmax(scores, dim=-1)
        out = torch.matmul(probs, v)                                  # [B, H, T, Hd]
        out = out.transpose(1, 2).reshape(b, t, d)
        return self.o_proj(out)


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, f = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = nn.Linear(d, f, bias=False)
        self.up_proj = nn.Linear(d, f, bias=False)
        self.down_proj = nn.Linear(f, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, position_bias):
        x = x + self.self_attn(self.input_layernorm(x), position_bias)
        return x + self.mlp(self.post_attention_layernorm(x))


class BaichuanModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def position_bias(self, t, dtype, device):
        cfg = self.cfg
        if cfg.position == "rope":
            cos, sin = rope_cos_sin(cfg.head_dim, t, cfg.rope_theta, dtype, device)
            return ("rope", cos, sin)
        return ("alibi", alibi_bias(cfg.num_attention_heads, t, dtype, device))

    def forward(self, tokens):
        x = self.embed_tokens(tokens)
        pb = self.position_bias(tokens.shape[1], x.dtype, x.device)
        for layer in self.layers:
            x = layer(x, pb)
        return self.norm(x)


class BaichuanForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = BaichuanModel(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)   # untied

    def forward(self, tokens):
        """tokens [B, T] (int64) -> logits [B, T, V]."""
        return self.lm_head(self.model(tokens))

    def loss(self, tokens, targets):
        """Mean cross entropy over the positions whose target != -1."""
        return token_nll(self(tokens), targets).sum() / (targets != IGNORE_INDEX).sum()


def token_nll(logits, targets):
    """[B, T] negative log-likelihood per position; 0 where target == -1."""
    keep = targets != IGNORE_INDEX
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, targets.clamp(min=0).long().unsqueeze(-1)).squeeze(-1)
    return torch.where(keep, nll, torch.zeros_like(nll))


def param_names(cfg):
    """Every parameter's HF name, in the order HF's state_dict lists them."""
    names = ["model.embed_tokens.weight"]
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        names += [p + "self_attn.W_pack.weight", p + "self_attn.o_proj.weight",
                  p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight", p + "mlp.down_proj.weight",
                  p + "input_layernorm.weight", p + "post_attention_layernorm.weight"]
    return names + ["model.norm.weight", "lm_head.weight"]


if __name__ == "__main__":
    # A self-check: print the ALiBi slopes of Baichuan-13B (40 heads) and run a tiny model.
    print("alibi slopes, 40 heads:", [round(s, 7) for s in alibi_slopes(40)])
    torch.manual_seed(0)
    for pos in ("rope", "alibi"):
        cfg = BaichuanConfig(101, 48, 80, 3, 2, position=pos)
        m = BaichuanForCausalLM(cfg).double()
        tok = torch.randint(0, 101, (2, 9))
        loss = m.loss(tok[:, :-1], tok[:, 1:])
        loss.backward()
        gn = sum(p.grad.norm() ** 2 for p in m.parameters()) ** 0.5
        print(pos, "loss", loss.item(), "grad norm", gn.item())
        assert sorted(n for n, _ in m.named_parameters()) == sorted(param_names(cfg))
