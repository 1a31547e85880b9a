#!/usr/bin/env bash
# Newcomer command 2: install what is missing, build, run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
bash tools/build.sh
cd build
ctest --output-on-failure -j"$(nproc 2>/dev/null || echo 2)"
