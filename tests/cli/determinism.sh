#!/usr/bin/env bash
# Same scenario + same seed = byte-identical outputs (batches.csv included);
# another seed differs. batches.csv agrees with summary.json.
set -eu
pdsim=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
scenario=$src/scenarios/quickstart.json
"$pdsim" run "$scenario" --out "$tmp/a" --quiet --batch-log
"$pdsim" run "$scenario" --out "$tmp/b" --quiet --batch-log
"$pdsim" run "$scenario" --out "$tmp/c" --quiet --seed 2
cmp "$tmp/a/summary.json" "$tmp/b/summary.json"
cmp "$tmp/a/requests.csv" "$tmp/b/requests.csv"
cmp "$tmp/a/batches.csv" "$tmp/b/batches.csv"
if cmp -s "$tmp/a/requests.csv" "$tmp/c/requests.csv"; then echo "FAIL: --seed 2 gave the same requests"; exit 1; fi
grep -q '"seed": 2,' "$tmp/c/summary.json"
[ ! -e "$tmp/c/batches.csv" ] || { echo "FAIL: batches.csv without --batch-log"; exit 1; }

# batches.csv: one row per batch of each pool, in start order; its busy time
# is the summary's utilization; decode steps emit one token per sequence, the
# TBT samples (exactly, disaggregated; colocated, a prompt's 1-token last chunk
# also counts as a one-token sequence).
check_batches() {
  python3 - "$1/summary.json" "$1/batches.csv" <<'PY'
import csv, json, sys
s = json.load(open(sys.argv[1]))
rows = list(csv.DictReader(open(sys.argv[2])))
assert rows, "no rows"
starts = [float(r["start_s"]) for r in rows]
assert starts == sorted(starts), "not in start order"
for pool, p in s["pools"].items():
    mine = [r for r in rows if r["pool"] == pool]
    assert len(mine) == p["batches"], (pool, len(mine), p["batches"])
    busy = sum(float(r["end_s"]) - float(r["start_s"]) for r in mine)
    want = p["utilization"] * p["instances"] * s["throughput"]["duration_s"]
    assert abs(busy - want) <= 1e-6 * want, (pool, busy, want)
    assert all(0 <= int(r["instance"]) < p["instances"] for r in mine), pool
    new = sum(int(r["new_tokens"]) for r in mine)
    assert abs(new / len(mine) - p["mean_batch_tokens"]) < 1e-9 * new, (pool, new)
decode = sum(int(r["decode_seqs"]) for r in rows)
extra = decode - s["tbt_s"]["count"]
assert extra == 0 if s["scenario"]["mode"] == "disaggregated" else 0 <= extra <= s["requests"]["completed"] // 100, (decode, s["tbt_s"]["count"])
assert {r["pool"] for r in rows} == set(s["pools"]), {r["pool"] for r in rows}
PY
}
check_batches "$tmp/a" || { echo "FAIL: batches.csv of the disaggregated run"; exit 1; }
"$pdsim" run "$scenario" --out "$tmp/d" --quiet --batch-log --set workload.num_requests=300 \
  --set 'cluster={"mode": "colocated", "colocated": {"gpu": "h100-sxm", "instances": 2, "policy": "chunked", "chunk_tokens": 512}}'
check_batches "$tmp/d" || { echo "FAIL: batches.csv of the colocated run"; exit 1; }
# A run that fails once batches.csv is open (a request no decode instance can
# hold) leaves neither it nor an earlier run's behind.
if "$pdsim" run "$scenario" --out "$tmp/a" --quiet --batch-log --set cluster.decode.memory_utilization=0.2 \
  --set 'workload.input_tokens={"dist": "fixed", "value": 120000}' 2>/dev/null; then
  echo "FAIL: a request that cannot fit ran"; exit 1
fi
[ ! -e "$tmp/a/batches.csv" ] && [ ! -e "$tmp/a/batches.csv.tmp" ] || { echo "FAIL: stale batches.csv left"; exit 1; }
echo "deterministic"
