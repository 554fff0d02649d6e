#!/usr/bin/env bash
# Runs on the lent GPU machine: the engine bench of the working tree (.device/bench) against a base commit's
# (.device/bench-base, built by `BASE=<ref> bash scripts/device/prepare.sh`), base then new, then new then base, for
# each set of bench options given as an argument (default: batch 1, then batch 8), so the two are compared in one
# run on one machine: between fresh machines the same code's step has moved by a fifth, and within one run the
# second of a pair ran about 7% faster than the first on the same code (H200, 2026-11-27). Outputs land in $OUT.
#   bash scripts/device/compare.sh "--decode 0" "--batch 8 --skip-matmul --decode 0"
set -uo pipefail
# shellcheck source=scripts/device/setup.sh
source "$(dirname "$0")/setup.sh"
[ -d bench-base ] || { echo "no .device/bench-base: run BASE=<ref> bash scripts/device/prepare.sh first"; exit 1; }
(($#)) || set -- "--decode 0" "--batch 8 --skip-matmul --decode 0"
n=0
for order in "bench-base bench" "bench bench-base"; do
  for bench in $order; do
    for args in "$@"; do
      n=$((n + 1))
      out="$OUT/$n-$bench$(echo "$args" | tr -d ' -').txt"
      # shellcheck disable=SC2086
      timeout 120 /tmp/node "$bench/bench-engine.mjs" $args > "$out" 2>&1
      echo "== $n: $bench $args"
      # The step's row and decoding's (tables of layers × tokens, or prompt and decoded counts).
      grep -E '^\| [0-9]+ \| ([0-9]+ × [0-9]+|[0-9]+) \| [0-9a-z.]' "$out" || echo "(no figures: see $out)"
    done
  done
done
