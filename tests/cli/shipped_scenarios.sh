#!/usr/bin/env bash
# Every shipped scenario runs to completion and writes its two result files.
set -u
pdsim=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
count=0
# Real-kernel scenarios that ask for the CUDA backend run with the roofline where no CUDA device is visible.
has_cuda=0
"$pdsim" devices 2>/dev/null | grep -q GiB && has_cuda=1
for scenario in "$src"/scenarios/*.json; do
  name=$(basename "$scenario" .json)
  count=$((count + 1))
  extra=()
  if [ "$has_cuda" -eq 0 ] && grep -q '"backend": *"cuda"' "$scenario"; then
    extra=(--set cost_model=roofline)
    echo "note $name asks for the CUDA backend and there is no CUDA device: run with the roofline cost model"
  fi
  if ! "$pdsim" run "$scenario" --out "$tmp/$name" --quiet "${extra[@]}" 2>"$tmp/$name.err"; then
    echo "FAIL $name: $(cat "$tmp/$name.err")"; failures=$((failures + 1)); continue
  fi
  for f in summary.json requests.csv; do
    [ -s "$tmp/$name/$f" ] || { echo "FAIL $name: no $f"; failures=$((failures + 1)); }
  done
  rows=$(($(wc -l <"$tmp/$name/requests.csv") - 1))
  grep -q "\"completed\": $rows," "$tmp/$name/summary.json" ||
    { echo "FAIL $name: summary.json completed != $rows CSV rows"; failures=$((failures + 1)); }
  echo "ok   $name ($rows requests)"
done
[ "$count" -ge 1 ] || { echo "no scenarios found"; exit 1; }
[ "$failures" -eq 0 ] || exit 1
