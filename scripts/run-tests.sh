#!/usr/bin/env bash
# One command to check MambaScope: installs what is missing, builds, and runs every test with
# ctest. GPU tests skip where no CUDA device is present. Set MAMBASCOPE_ASAN=1 to also run the
# whole suite under AddressSanitizer + UndefinedBehaviorSanitizer (the `asan` CMake preset).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
export QT_QPA_PLATFORM=offscreen
ctest --test-dir build --output-on-failure -j"$(nproc)"
if [ "${MAMBASCOPE_ASAN:-0}" = "1" ]; then
  cmake --preset asan -DMAMBASCOPE_UI=OFF
  cmake --build --preset asan -j"$(nproc)"
  ctest --preset asan -j"$(nproc)"
fi
