#!/usr/bin/env bash
# Runs on the lent GPU machine (see prepare.sh; setup.sh unpacks what it needs) the engine bench at batch 1 (with a per-kernel profile), batch 8 and decoding alone (SmolLM2's shape, then
# Llama 3.2 1B's, where the weights a token reads weigh more than its dispatches), then a few policy optimization
# steps on hone-tiny (sampling dominates them). Results land in $OUT.
set -uo pipefail
# shellcheck source=scripts/device/setup.sh
source "$(dirname "$0")/setup.sh"
# Batch 1 with a per-kernel profile, decoding alone (fp16, a longer run, profiled; then on Llama 3.2 1B's shape),
# then batch 8: the most telling first, since a lent machine's time is short.
for args in "--profile" "--f16 --skip-step --skip-matmul --decode 64 --prompt 16 --profile" \
  "--shape llama-3.2-1b --f16 --skip-step --skip-matmul --decode 64 --prompt 16" "--batch 8"; do
  name=$(echo "bench$args" | tr -d ' -')
  timeout 90 /tmp/node bench/bench-engine.mjs $args > "$OUT/$name.txt" 2>&1
  echo "== bench $args"; grep -v '^{' "$OUT/$name.txt" | sed -n '/^| layers\|^| prompt/,/^| GPU memory/p' | grep -v '^$'
done
# Policy optimization on hone-tiny with the example rule: every completion of a micro-batch is decoded as a row.
timeout 60 /tmp/node hone.mjs train --model ../public/models/hone-tiny --data ../public/examples/rl-prompts.jsonl \
  --method grpo --reward-js ../public/examples/rl-reward.js --out /tmp/grpo --max-steps 4 --validation 0 \
  --eval-every 0 --checkpoint-every 0 > "$OUT/grpo.txt" 2>&1
echo "== grpo on hone-tiny, 4 steps"; tr '\r' '\n' < "$OUT/grpo.txt" | grep -E 'step 4/4|rror' | tail -2
