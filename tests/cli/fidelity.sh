#!/usr/bin/env bash
# results/fidelity.md and the "calibrated" objects of the shipped GPU
# profiles are exactly what tools/fidelity.cc produces from the shipped tables
# and the source data (skipped, exit 77, when the source data is absent).
set -u
fidelity=$1
src=$2
# The source data lives in shared/ beside the checkout (where CI puts it too).
sources=${PDSIM_FIDELITY_SOURCES:-$src/../shared/data}
[ -d "$sources" ] || sources=/work/shared/data
[ -d "$sources/vidur-profiling" ] && [ -d "$sources/distserve-profile" ] || { echo "SKIP: no $sources"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/data/profiles"
cp -r "$src/profiles/models.json" "$src/profiles/gpus" "$src/profiles/measured" "$tmp/data/profiles/"
chmod -R u+w "$tmp/data"
(cd "$tmp/data" && "$fidelity" --data-dir . --sources "$sources" --out "$tmp/results" --write-calibration >/dev/null) ||
  { echo "FAIL: pdsim_fidelity exited $?"; exit 1; }
diff -r "$src/profiles/gpus" "$tmp/data/profiles/gpus" || { echo "FAIL: shipped calibration differs from the fit"; exit 1; }
diff "$src/results/fidelity.md" "$tmp/results/fidelity.md" >/dev/null || { echo "FAIL: results/fidelity.md is stale"; exit 1; }
# (fidelity.json carries full-precision doubles; the rounded markdown and profiles are what must match.)
echo "fidelity report reproduces"
