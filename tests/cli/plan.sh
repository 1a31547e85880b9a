#!/usr/bin/env bash
# pdsim plan: writes plan.json and candidates.csv, byte-identical for any
# --jobs; a bad plan file exits 2 with one line naming the file and JSON path.
set -u
pdsim=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cat >"$tmp/plan.json" <<JSON
{ "scenario": "$src/scenarios/quickstart.json",
  "target_rps": 60,
  "prefill": {"gpus": ["h100-sxm", "l40s"], "tp": [1, 2], "instances": [1, 3]},
  "decode":  {"gpus": ["h100-sxm", "l40s"], "tp": [1], "instances": [1, 3]},
  "max_total_gpus": 8 }
JSON
for jobs in 1 3; do
  "$pdsim" plan "$tmp/plan.json" --out "$tmp/out$jobs" --jobs "$jobs" --quiet || fail "plan --jobs $jobs exited $?"
done
for f in plan.json candidates.csv; do
  cmp -s "$tmp/out1/$f" "$tmp/out3/$f" || fail "$f differs between --jobs 1 and --jobs 3"
done
for key in '"best": {' '"name": "' '"goodput_rps":' '"usd_per_hour":' '"status": "pass"' '"candidates": \['; do
  grep -q -- "$key" "$tmp/out1/plan.json" || fail "missing $key in plan.json"
done
head -1 "$tmp/out1/candidates.csv" | grep -q '^rank,prefill_gpu,prefill_tp,prefill_instances,decode_gpu' ||
  fail "candidates.csv header"
echo "ok   plan.json and candidates.csv identical for --jobs 1 and 3"

expect() {
  local pattern=$1
  shift
  "$pdsim" "$@" >/dev/null 2>"$tmp/err"
  local rc=$?
  [ "$rc" -eq 2 ] || fail "exit $rc, expected 2, for: $* ($(cat "$tmp/err"))"
  grep -qE -- "$pattern" "$tmp/err" || fail "stderr does not match /$pattern/: $(cat "$tmp/err")"
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "expected one stderr line: $(cat "$tmp/err")"
  echo "ok   $(cat "$tmp/err")"
}
sed 's/"l40s"\]/"l40z"]/' "$tmp/plan.json" | sed '0,/l40z/s//l40s/' >"$tmp/bad.json"
expect 'bad.json: \$\.decode\.gpus\[1\]: unknown GPU "l40z"' plan "$tmp/bad.json" --out "$tmp/bad"
[ ! -e "$tmp/bad/plan.json" ] || fail "plan.json left after a failed plan"
expect 'quickstart.json: \$\.workload\.arrival\.process: .*closed_loop' plan "$tmp/plan.json" \
  --out "$tmp/bad" --set 'workload.arrival={"process": "closed_loop", "concurrency": 4}'
echo "plan cli ok"
