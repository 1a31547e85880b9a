#!/usr/bin/env bash
# pdsim goodput: JSON keys; the goodput's probe is reproduced by a plain
# `pdsim run` at that rate; an SLO that cannot be met gives goodput 0 (exit 0);
# closed loop and bad options exit 2 with one line naming the cause.
set -u
pdsim=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
base=$src/scenarios/quickstart.json
# shellcheck source=tests/cli/lib.sh
. "$src/tests/cli/lib.sh"

"$pdsim" goodput "$base" --json >"$tmp/g.json" || fail "goodput exited $?"
for key in '"goodput_rps":' '"goodput_rps_per_gpu":' '"goodput_rps_per_usd_hour":' '"bracket_rps":' \
           '"probes":' '"rate_rps":' '"attainment":' '"converged": true' '"slo_feasible": true'; do
  grep -q -- "$key" "$tmp/g.json" || fail "missing $key in $(cat "$tmp/g.json")"
done
g=$(sed -n 's/^  "goodput_rps": \([0-9.e+-]*\),$/\1/p' "$tmp/g.json")
[ -n "$g" ] || fail "no goodput_rps in $(cat "$tmp/g.json")"
probe=$(grep -A1 -- "\"rate_rps\": $g,\$" "$tmp/g.json" | sed -n 's/.*"attainment": \([0-9.e+-]*\),$/\1/p' | head -1)
[ -n "$probe" ] || fail "no probe at the goodput rate $g"
"$pdsim" run "$base" --quiet --out "$tmp/run" --set workload.arrival.rate_rps="$g" || fail "run at $g failed"
ran=$(sed -n 's/^    "attainment": \([0-9.e+-]*\),$/\1/p' "$tmp/run/summary.json")
[ "$ran" = "$probe" ] || fail "pdsim run at $g req/s gives attainment $ran, the goodput probe said $probe"
echo "ok   goodput $g req/s, attainment $probe reproduced by pdsim run"

# Same command twice: byte-identical output.
"$pdsim" goodput "$base" --json >"$tmp/g2.json"
cmp -s "$tmp/g.json" "$tmp/g2.json" || fail "goodput output differs between two runs"

# An SLO below the zero-load TTFT: goodput 0, flagged, exit 0.
"$pdsim" goodput "$base" --json --set slo.ttft_s=0.001 >"$tmp/none.json" || fail "infeasible SLO exited $?"
grep -q '"goodput_rps": 0' "$tmp/none.json" || fail "infeasible SLO: goodput not 0: $(cat "$tmp/none.json")"
grep -q '"slo_feasible": false' "$tmp/none.json" || fail "infeasible SLO not flagged"
grep -q 'cannot be met' "$tmp/none.json" || fail "infeasible SLO: no message"

expect 'quickstart.json: \$\.workload\.arrival\.process: .*closed_loop' goodput "$base" \
  --set 'workload.arrival={"process": "closed_loop", "concurrency": 4}'
expect '--attainment: must be in \(0, 1\]' goodput "$base" --attainment 1.5
expect '--tolerance: must be in \(0, 1\)' goodput "$base" --tolerance 0
expect '--max-probes: must be >= 2' goodput "$base" --max-probes 1
echo "goodput cli ok"
