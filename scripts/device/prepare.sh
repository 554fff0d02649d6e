#!/usr/bin/env bash
# Prepares `.device/` and `.gl/` (both git-ignored) for a run on a lent GPU machine, whose image has no Node:
# the engine bench (its browser mode split into a chunk of its own, loaded only with --browser, since it needs
# esbuild and Playwright) and the CLI bundled by esbuild, Node itself (xz), the webgpu package's Linux dawn.node,
# the Vulkan loader's and glvnd's Debian packages (the NVIDIA driver's Vulkan library, libGLX_nvidia, needs glvnd
# where the image lacks it), and the tiny test models for scripts/compare-with-transformers.py.
# Then run, with `.device` and `.gl` carried: bash scripts/device/run.sh
# With BASE=<git ref>, also the bench of that commit as .device/bench-base, for scripts/device/compare.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .device/node_modules/webgpu/dist/linux-x64 .gl
bundle_bench() { # into $1, from the checkout in the current directory
  rm -rf "$1" && npx esbuild scripts/bench-engine.ts --bundle --splitting --platform=node --format=esm --outdir="$1" \
    --out-extension:.js=.mjs --external:webgpu --external:esbuild --external:playwright-core --log-level=warning
}
bundle_bench .device/bench
if [ -n "${BASE:-}" ]; then
  base=$(mktemp -d)
  git worktree add -q --detach "$base" "$BASE"
  ln -s "$PWD/node_modules" "$base/node_modules"
  (cd "$base" && bundle_bench "$OLDPWD/.device/bench-base")
  git worktree remove --force "$base"
fi
npx esbuild cli/main.ts --bundle --platform=node --format=esm --outfile=.device/hone.mjs --external:webgpu --log-level=warning
cp node_modules/webgpu/index.js node_modules/webgpu/package.json .device/node_modules/webgpu/
cp node_modules/webgpu/dist/linux-x64/dawn.node .device/node_modules/webgpu/dist/linux-x64/
[ -f .device/node.xz ] || xz -9 -T2 -c "$(command -v node)" > .device/node.xz
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p /tmp/amd64/partial
  # shellcheck disable=SC2086
  apt-get $o update -q >/dev/null
  # shellcheck disable=SC2086
  (cd .gl && apt-get $o download libvulkan1 libglvnd0 libgl1 libglx0 libegl1 libgles2 libopengl0 >/dev/null)
fi
du -sh .device .gl
