#!/usr/bin/env python3
"""A synthetic Baichuan-7B-shaped Hugging Face checkpoint for `make bench-convert`.

Hidden 4096, FFN 11008, 32 heads, vocabulary 64000, --layers decoder layers (4 by default),
random bf16 weights (N(0, 0.02); norms 1), written with the real libraries in both formats:
  OUT/st/  config.json + model.safetensors      (safetensors.torch.save_file)
  OUT/bin/ config.json + pytorch_model.bin      (torch.save of the state dict, as Transformers does)
Tensors are generated one at a time in fp32 and kept in bf16 (about 2.7 GB for 4 layers).
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", required=True)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    d, f, v, heads = 4096, 11008, 64000, 32
    torch.manual_seed(a.seed)

    def rand(*shape):
        return (torch.randn(*shape, dtype=torch.float32) * 0.02).to(torch.bfloat16)

    sd = {"model.embed_tokens.weight": rand(v, d)}
    for i in range(a.layers):
        p = f"model.layers.{i}."
        sd[p + "input_layernorm.weight"] = torch.ones(d, dtype=torch.bfloat16)
        sd[p + "self_attn.W_pack.weight"] = rand(3 * d, d)
        sd[p + "self_attn.o_proj.weight"] = rand(d, d)
        sd[p + "post_attention_layernorm.weight"] = torch.ones(d, dtype=torch.bfloat16)
        sd[p + "mlp.gate_proj.weight"] = rand(f, d)
        sd[p + "mlp.up_proj.weight"] = rand(f, d)
        sd[p + "mlp.down_proj.weight"] = rand(d, f)
    sd["model.norm.weight"] = torch.ones(d, dtype=torch.bfloat16)
    sd["lm_head.weight"] = rand(v, d)
    config = {  # Baichuan-7B's config.json, fewer layers
        "architectures": ["BaichuanForCausalLM"], "model_type": "baichuan", "hidden_act": "silu",
        "hidden_size": d, "intermediate_size": f, "num_attention_heads": heads,
        "num_hidden_layers": a.layers, "vocab_size": v, "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6, "initializer_range": 0.02, "bos_token_id": 1, "eos_token_id": 2,
        "pad_token_id": 0, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_cache": True,
    }
    for sub in ("st", "bin"):
        os.makedirs(os.path.join(a.output, sub), exist_ok=True)
        with open(os.path.join(a.output, sub, "config.json"), "w") as fh:
            json.dump(config, fh, indent=2)
    save_file(sd, os.path.join(a.output, "st", "model.safetensors"), metadata={"format": "pt"})
    torch.save(sd, os.path.join(a.output, "bin", "pytorch_model.bin"))
    n = sum(t.numel() for t in sd.values())
    print(f"synthetic Baichuan-7B-shaped checkpoint: {a.layers} layers, {n / 1e9:.3f}B params, "
          f"{2 * n / 1e9:.2f} GB bf16 per format -> {a.output}")


if __name__ == "__main__":
    main()
