#!/usr/bin/env bash
# Newcomer command 1: install what is missing, build, run the quickstart scenario.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
bash tools/build.sh pdsim  # the CLI only: the quickest way to a first run
./build/tools/pdsim run scenarios/quickstart.json --out out/quickstart
