#!/usr/bin/env python3
"""Greedy answer of a model folder with a PEFT adapter in transformers + PEFT, to check that an adapter Hone trained
loads there unchanged and answers as `hone generate --temperature 0` does.

Usage: peft-greedy.py MODEL_DIR ADAPTER_DIR PROMPT [--max-new-tokens N]
Renders PROMPT as one user turn through the folder's chat template (tokenizer_config.json or chat_template.jinja),
then prints the greedy ids (stop tokens excluded) and their text as JSON: { "ids": [...], "text": "..." }, the shape
`hone generate --json` prints. Needs torch, transformers, peft and jinja2 (a machine with PyTorch); Hone's tests do not.
"""
import argparse
import json
import os

import torch
from peft import PeftModel
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM
from transformers.utils.chat_template_utils import render_jinja_template


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("adapter")
    parser.add_argument("prompt")
    parser.add_argument("--max-new-tokens", type=int, default=20)
    args = parser.parse_args()

    config = json.load(open(os.path.join(args.model, "tokenizer_config.json")))
    template = config.get("chat_template")
    jinja = os.path.join(args.model, "chat_template.jinja")
    if template is None and os.path.exists(jinja):
        template = open(jinja).read()
    special = {k: config.get(k) for k in ("bos_token", "eos_token", "pad_token", "unk_token") if config.get(k)}
    rendered, _ = render_jinja_template(
        conversations=[[{"role": "user", "content": args.prompt}]], chat_template=template, add_generation_prompt=True,
        **special,
    )
    tokenizer = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    ids = tokenizer.encode(rendered[0], add_special_tokens=False).ids
    generation = json.load(open(os.path.join(args.model, "generation_config.json")))
    stops = generation.get("eos_token_id", [])
    stops = set(stops if isinstance(stops, list) else [stops])
    if "eos_token" in special:
        stops.add(tokenizer.token_to_id(special["eos_token"]))

    base = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="eager")
    model = PeftModel.from_pretrained(base, args.adapter).eval()
    x = torch.tensor([ids])
    out: list[int] = []
    with torch.no_grad():
        for _ in range(args.max_new_tokens):
            token = model(input_ids=x).logits[0, -1].argmax().item()
            if token in stops:
                break
            out.append(token)
            x = torch.cat([x, torch.tensor([[token]])], dim=1)
    print(json.dumps({"ids": out, "text": tokenizer.decode(out, skip_special_tokens=True)}))


if __name__ == "__main__":
    main()
