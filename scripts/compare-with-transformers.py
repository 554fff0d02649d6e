#!/usr/bin/env python3
"""Compare `hone grads` output with Hugging Face transformers + PEFT on the same model, adapter and batch.

Usage: compare-with-transformers.py MODEL_DIR ADAPTER_DIR TOKENS.json HONE_OUT.safetensors [--labels FILE] [--full]

Runs the model in float64 (eager attention), so the reference is exact next to Hone's fp32, and prints, per
tensor, max |hone - hf| / max |hf|. Needs torch, transformers, peft and safetensors (a machine with PyTorch);
Hone's tests do not need it.
"""
import argparse
import json

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("adapter")
    parser.add_argument("tokens")
    parser.add_argument("hone_out")
    parser.add_argument("--labels")
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()

    base = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float64, attn_implementation="eager")
    model = PeftModel.from_pretrained(base, args.adapter, is_trainable=True).to(torch.float64)
    model.eval()  # no dropout: Hone's grads are deterministic
    if args.full:
        for p in model.parameters():
            p.requires_grad_(True)
    input_ids = torch.tensor(json.load(open(args.tokens)))
    labels = torch.tensor(json.load(open(args.labels))) if args.labels else input_ids
    out = model(input_ids=input_ids, labels=labels)
    out.loss.backward()

    hf = {"loss": out.loss.detach().reshape(1)}
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        if "lora_" in name:
            hf[name.replace(".default", "")] = p.grad
        elif args.full:
            hf[name.removeprefix("base_model.model.").replace(".base_layer", "")] = p.grad
    hone = load_file(args.hone_out)

    worst = 0.0
    missing = sorted(set(hf) - set(hone))
    for key in sorted(hf):
        if key not in hone:
            continue
        ref = hf[key].double()
        err = ((hone[key].double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()
        worst = max(worst, err)
        print(f"{err:.2e}  {key}")
    print(json.dumps({"tensors": len(hf) - len(missing), "missing_in_hone": missing, "worst_relative_error": worst,
                      "hf_loss": hf["loss"].item(), "hone_loss": hone["loss"].item()}))


if __name__ == "__main__":
    main()
