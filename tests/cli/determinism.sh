#!/usr/bin/env bash
# Same scenario + same seed = byte-identical outputs; another seed differs.
set -eu
pdsim=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
scenario=$src/scenarios/quickstart.json
"$pdsim" run "$scenario" --out "$tmp/a" --quiet
"$pdsim" run "$scenario" --out "$tmp/b" --quiet
"$pdsim" run "$scenario" --out "$tmp/c" --quiet --seed 2
cmp "$tmp/a/summary.json" "$tmp/b/summary.json"
cmp "$tmp/a/requests.csv" "$tmp/b/requests.csv"
if cmp -s "$tmp/a/requests.csv" "$tmp/c/requests.csv"; then echo "FAIL: --seed 2 gave the same requests"; exit 1; fi
grep -q '"seed": 2,' "$tmp/c/summary.json"
echo "deterministic"
