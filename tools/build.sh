#!/usr/bin/env bash
# Configures and builds pdsim (Release) into ./build. CUDA parts build only if nvcc is found.
# Usage: tools/build.sh [TARGET ...]   (default: everything, tests and benchmarks included)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
if [ $# -gt 0 ]; then
  cmake --build build -j"$jobs" --target "$@"
else
  cmake --build build -j"$jobs"
fi
