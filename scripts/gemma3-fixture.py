#!/usr/bin/env python3
"""Writes tests/fixtures/gemma3-tiny: a random tiny Gemma3ForCausalLM made by transformers itself, a PEFT LoRA
adapter on all seven projections, a token batch, and what transformers + PEFT compute from them in float64
(logits, loss, the LoRA gradients, and with every weight trainable, the base weights' gradients). Hone's float64
reference and engine are checked against these files where PyTorch is not installed (CI). transformers computes
Gemma's norms, its attention softmax and its rotary frequencies in float32 whatever the model's dtype; here they are
computed in float64 too (patched below), so the files hold float64's answer to float64's precision.

Usage: scripts/gemma3-fixture.py [OUT_DIR]   (needs torch, transformers >= 5, peft, safetensors)
The model's sequences (10 tokens) are longer than its sliding window (4), with local and global layers.
"""
import json
import os
import sys

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import Gemma3ForCausalLM, Gemma3TextConfig
from transformers.models.gemma3 import modeling_gemma3

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "gemma3-tiny")
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def norm_in_input_dtype(self, x):
    """Gemma3RMSNorm's x̂ · (1 + w), in x's dtype: transformers computes it in float32 even in a float64 model."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * (1.0 + self.weight)


def attention_in_input_dtype(module, query, key, value, attention_mask, scaling=None, **kwargs):
    """eager_attention_forward without its float32 softmax (Gemma 3 applies no score softcapping)."""
    key = modeling_gemma3.repeat_kv(key, module.num_key_value_groups)
    value = modeling_gemma3.repeat_kv(value, module.num_key_value_groups)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = torch.softmax(scores, dim=-1)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def rotary_in_float64(self, x, position_ids, layer_type):
    """Gemma3RotaryEmbedding's cos and sin (default rope), from float64 angles rather than float32 ones."""
    inv_freq = getattr(self, f"{layer_type}_inv_freq").to(torch.float64)
    freqs = position_ids[..., None].to(torch.float64) * inv_freq[None, None, :]
    angles = torch.cat((freqs, freqs), dim=-1)
    return angles.cos().to(x.dtype), angles.sin().to(x.dtype)


def main() -> None:
    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=64, hidden_size=24, intermediate_size=40, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=64, query_pre_attn_scalar=6, sliding_window=4,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"], rope_theta=100.0,
        rope_local_base_freq=10.0, attn_implementation="eager",
    )
    model = Gemma3ForCausalLM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            # Norm weights start at zero (x̂ · (1 + 0)); random ones show that 1 + w is applied.
            p.copy_(torch.randn_like(p) * (0.3 if "norm" in name else 0.4))
    os.makedirs(OUT, exist_ok=True)
    model.save_pretrained(OUT)

    lora = LoraConfig(r=2, lora_alpha=4, target_modules=PROJECTIONS, lora_dropout=0.0, init_lora_weights=False)
    peft = get_peft_model(model, lora)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn_like(p) * 0.3)
    peft.save_pretrained(os.path.join(OUT, "adapter"))

    tokens = torch.randint(0, config.vocab_size, (2, 10))
    labels = tokens.clone()
    labels[0, :3] = -100
    json.dump({"tokens": tokens.tolist(), "labels": labels.tolist()}, open(os.path.join(OUT, "batch.json"), "w"))

    peft = peft.to(torch.float64)
    modeling_gemma3.Gemma3RMSNorm.forward = norm_in_input_dtype
    modeling_gemma3.eager_attention_forward = attention_in_input_dtype
    modeling_gemma3.Gemma3RotaryEmbedding.forward = rotary_in_float64
    rotary = peft.base_model.model.model.rotary_emb
    for kind, params in config.rope_parameters.items():
        dim = config.head_dim
        inv_freq = 1.0 / (params["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
        setattr(rotary, f"{kind}_inv_freq", inv_freq)
    peft.eval()
    for p in peft.parameters():
        p.requires_grad_(True)
    logits = peft(input_ids=tokens).logits
    # transformers' own loss upcasts to float32; this is its shifted mean cross-entropy in float64.
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, config.vocab_size), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    loss.backward()
    expected = {"loss": loss.detach().reshape(1), "logits": logits.detach()}
    for name, p in peft.named_parameters():
        key = name.removeprefix("base_model.model.").replace(".base_layer", "").replace(".default", "")
        expected[f"grad.{key}"] = p.grad.detach().contiguous()
    save_file(expected, os.path.join(OUT, "expected.safetensors"))
    print(f"wrote {OUT}: loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
