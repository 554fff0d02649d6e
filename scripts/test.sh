#!/usr/bin/env bash
# All of Hone's tests, on a fresh machine: installs what they need, then runs typecheck, lint, the unit and
# GPU tests (real WebGPU in Node) and the browser tests (Debian's Chromium with WebGPU).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: Chromium for the browser tests (it also ships SwiftShader, the software Vulkan driver the
# GPU tests use on machines without a GPU) and the Vulkan loader Dawn needs.
missing=()
[ -x "${HONE_CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1' || missing+=(libvulkan1)
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing ${missing[*]} ..."
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    echo "Hone's tests need these system packages: ${missing[*]}." >&2
    echo "On Debian or Ubuntu: sudo apt-get install ${missing[*]}  (elsewhere: a Chromium build and the Vulkan loader;" >&2
    echo "set HONE_CHROMIUM to the browser's path). Then run 'npm test' again." >&2
    exit 1
  fi
fi

# npm packages, when missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# The GPU tests run on SwiftShader, as the browser tests do, whatever else the machine has (a driver named in
# VK_ICD_FILENAMES wins): lavapipe compiles each new shader through LLVM, which took minutes for the attention
# kernels on a machine whose shader cache was cold, so a run there depended on what ran before it.
SWIFTSHADER=/usr/lib/chromium/vk_swiftshader_icd.json
if [ -z "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ] && [ -f "$SWIFTSHADER" ]; then
  export VK_ICD_FILENAMES="$SWIFTSHADER"
fi

npm run typecheck
npm run lint
npx vitest run
npx playwright test
