#!/usr/bin/env bash
# Installs the Debian packages pdsim needs, only those missing. Idempotent.
# Runs apt-get directly as root, through sudo otherwise.
set -euo pipefail

packages=(cmake g++ make pkg-config nlohmann-json3-dev libcli11-dev libeigen3-dev doctest-dev libbenchmark-dev
  gnuplot-nox libopenmpi-dev openmpi-bin  # pdsim plan: plots (gnuplot) and mpirun (both optional)
  python3)  # tests: tools/gpu_targets.py, tests/cli/fuzz_scenarios.py

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all packages present"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install_deps: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi
echo "install_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
