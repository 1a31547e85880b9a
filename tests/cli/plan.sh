#!/usr/bin/env bash
# pdsim plan: writes plan.json, the CSV tables and best_scenario.json,
# byte-identical for any --jobs; the configuration it recommends meets the SLO
# when re-run with pdsim run on another seed (attainment within 2 points of
# the target); without gnuplot it says so and still writes CSV/JSON; a bad
# plan file exits 2 with one line naming the file and JSON path.
set -u
pdsim=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tests/cli/lib.sh
. "$src/tests/cli/lib.sh"
attainment() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['slo']['attainment'])" "$1"; }

# The plan both plan tests use (tests/cli/fixtures/quickstart-plan.json; @SRC@ = this checkout).
sed "s#@SRC@#$src#" "$src/tests/cli/fixtures/quickstart-plan.json" >"$tmp/plan.json"
sed 's/"target_rps": 60,/"objective": "goodput_per_gpu",/' "$tmp/plan.json" >"$tmp/plan_max.json"
outputs="plan.json candidates.csv finalists.csv phases.csv sweep.csv pareto.csv cost_vs_ratio.csv best_scenario.json plots.gp"
for p in plan plan_max; do
  for jobs in 1 3; do
    "$pdsim" plan "$tmp/$p.json" --out "$tmp/$p$jobs" --jobs "$jobs" --quiet --no-plots ||
      fail "plan $p --jobs $jobs exited $?"
  done
  for f in $outputs; do
    cmp -s "$tmp/${p}1/$f" "$tmp/${p}3/$f" || fail "$p: $f differs between --jobs 1 and --jobs 3"
  done
  echo "ok   $p: $outputs identical for --jobs 1 and 3"
  cmp -s "$tmp/${p}1/finalist_2.json" "$tmp/${p}3/finalist_2.json" || fail "$p: finalist_2.json differs"
  # Every recommendation holds on seeds the plan never used.
  for s in "$tmp/${p}1/best_scenario.json" "$tmp/${p}1"/finalist_*.json; do
    for seed in 11 12; do
      "$pdsim" run "$s" --seed $seed --out "$tmp/run" --quiet || fail "pdsim run $s exited $?"
      a=$(attainment "$tmp/run/summary.json")
      python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= 0.9 - 0.02 else 1)" "$a" ||
        fail "$p: $(basename "$s") at seed $seed: attainment $a < 0.88"
      echo "ok   $p: $(basename "$s") at seed $seed: attainment $a"
    done
  done
done
for key in '"best": {' '"name": "' '"goodput_rps":' '"recommended_rps":' '"usd_per_hour":' '"status": "pass"' \
  '"candidates": \[' '"pareto": \[' '"phases": \['; do
  grep -q -- "$key" "$tmp/plan1/plan.json" || fail "missing $key in plan.json"
done
head -1 "$tmp/plan1/candidates.csv" | grep -q '^index,name,mode,' || fail "candidates.csv header"

# Plots are optional: without gnuplot on PATH, one line on stderr, data still written.
PATH=/nonexistent "$pdsim" plan "$tmp/plan.json" --out "$tmp/noplot" --quiet 2>"$tmp/err" ||
  fail "plan without gnuplot exited $?"
grep -q 'gnuplot not found' "$tmp/err" || fail "no 'gnuplot not found' message: $(cat "$tmp/err")"
[ -s "$tmp/noplot/plan.json" ] && [ -s "$tmp/noplot/pareto.csv" ] || fail "plan.json/pareto.csv missing without gnuplot"
echo "ok   without gnuplot: $(cat "$tmp/err")"
if command -v gnuplot >/dev/null 2>&1; then
  "$pdsim" plan "$tmp/plan.json" --out "$tmp/plots" --quiet || fail "plan with plots exited $?"
  for f in attainment_vs_rate pareto cost_vs_ratio; do
    for ext in png svg; do [ -s "$tmp/plots/$f.$ext" ] || fail "missing plot $f.$ext"; done
  done
  echo "ok   plots written (PNG and SVG)"
fi

sed 's/"l40s"\]/"l40z"]/' "$tmp/plan.json" | sed '0,/l40z/s//l40s/' >"$tmp/bad.json"
expect 'bad.json: \$\.decode\.gpus\[1\]: unknown GPU "l40z"' plan "$tmp/bad.json" --out "$tmp/bad"
[ ! -e "$tmp/bad/plan.json" ] || fail "plan.json left after a failed plan"
expect 'quickstart.json: \$\.workload\.arrival\.process: .*closed_loop' plan "$tmp/plan.json" \
  --out "$tmp/bad" --set 'workload.arrival={"process": "closed_loop", "concurrency": 4}'
echo "plan cli ok"
