#!/usr/bin/env bash
# Sourced on the lent GPU machine by run.sh and compare.sh: unpacks the Vulkan loader and glvnd (prepare.sh fetched
# them), points the loader at the NVIDIA driver, unpacks Node to /tmp/node, and stops when Dawn finds no adapter.
# Leaves the shell in .device/.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$ICD" ] && export VK_DRIVER_FILES=$ICD
python3 -c "import lzma,shutil; shutil.copyfileobj(lzma.open('.device/node.xz'), open('/tmp/node','wb'))"
chmod +x /tmp/node
cd .device
/tmp/node hone.mjs gpu-info | head -12
/tmp/node hone.mjs gpu-info >/dev/null 2>&1 || { echo "no adapter: stopping"; exit 1; }
