#!/usr/bin/env bash
# pdsim profile writes tables the profiled model reads and a device profile the
# roofline reads; pdsim validate writes validation.{json,md} with each cost
# model's summary and signed errors vs real; bad input exits 2.
set -u
pdsim=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL $*"; exit 1; }

# profile: a short sweep into a fresh data directory.
mkdir -p "$tmp/data/profiles"
cp "$src/profiles/models.json" "$tmp/data/profiles/"
"$pdsim" profile --backend cpu --model tiny-llama-512 --threads 1 --iters 1 --passes 1 --name test-cpu --out "$tmp/data/profiles" \
  >"$tmp/profile.out" 2>&1 || fail "profile: $(cat "$tmp/profile.out")"
for f in gemm_bf16 context_attention_bf16 generation_attention_bf16 allreduce; do
  csv="$tmp/data/profiles/measured/test-cpu/$f.csv"
  [ -s "$csv" ] || fail "no $f.csv"
  grep -q '^# .*device: ' "$csv" || fail "$f.csv has no device provenance line"
  grep -q '^# run: pdsim profile .*; date: .*; source: .' "$csv" || fail "$f.csv has no run (command, date, source) line"
  # (The all-reduce table is a proxy computed from the ceilings, not swept.)
  [ $f = allreduce ] || grep -q '^# run: .*fastest of 1 pass over the sweep; date' "$csv" ||
    fail "$f.csv's run line does not name the one pass"
done
# The source revision is a commit of this checkout (the one the binary was
# built from; a later commit does not make it wrong), not a placeholder, and
# the device JSON names the same.
rev=$(sed -n 's/^# run: pdsim profile .*; source: \([0-9a-f]*\)\(-dirty\)\{0,1\}$/\1/p' \
  "$tmp/data/profiles/measured/test-cpu/gemm_bf16.csv" | head -1)
if git -C "$src" rev-parse HEAD >/dev/null 2>&1; then
  [ ${#rev} -eq 12 ] && git -C "$src" cat-file -e "$rev^{commit}" 2>/dev/null ||
    fail "gemm_bf16.csv's run line names no commit of $src: $(grep '^# run' "$tmp/data/profiles/measured/test-cpu/gemm_bf16.csv")"
  grep -q "pdsim source $rev" "$tmp/data/profiles/gpus/test-cpu.json" || fail "test-cpu.json's sources.all does not name $rev"
fi
[ -s "$tmp/data/profiles/gpus/test-cpu.json" ] || fail "no device profile"
# The ceiling is the fastest GEMM the run timed: no row of its table beats it
# (a compute factor, a fraction of peak, could not follow one that did).
python3 - "$tmp/data/profiles/gpus/test-cpu.json" "$tmp/data/profiles/measured/test-cpu/gemm_bf16.csv" <<'PY' ||
import csv, json, sys
p = json.load(open(sys.argv[1]))
peak = p["dense_tflops"]["bf16"] * 1e12
rows = [r for r in csv.reader(open(sys.argv[2])) if r and not r[0].startswith("#")][1:]
fastest = max(2 * float(m) * float(n) * float(k) / (float(us) * 1e-6) for m, n, k, us in rows)
assert fastest <= peak * (1 + 1e-4), f"a GEMM row ran at {fastest:.4g} FLOP/s, the profile's peak is {peak:.4g}"
assert "the fastest of a" in p["sources"]["dense_tflops"], p["sources"]["dense_tflops"]
PY
  fail "device profile's peak vs its GEMM table"
# Both cost models load what profile wrote.
for cm in profiled roofline; do
  "$pdsim" --data-dir "$tmp/data" cost --model tiny-llama-512 --gpu test-cpu --decode 100x4 --cost-model $cm --json \
    >"$tmp/cost.json" 2>"$tmp/cost.err" || fail "cost --cost-model $cm on the profiled device: $(cat "$tmp/cost.err")"
  grep -q '"total_s"' "$tmp/cost.json" || fail "cost json"
done
grep -q '"source": "measured"' "$tmp/cost.json" && fail "roofline output has measured ops"
"$pdsim" --data-dir "$tmp/data" cost --model tiny-llama-512 --gpu test-cpu --decode 100x4 --cost-model profiled --json |
  grep -q '"source": "measured"\|"source": "interpolated"' || fail "profiled did not use the new tables"

# A second model's sweep merges into the same tables: the first model's rows stay.
gemm="$tmp/data/profiles/measured/test-cpu/gemm_bf16.csv"
rows_before=$(grep -vc '^#' "$gemm")
first_row=$(grep -v '^#' "$gemm" | sed -n 2p)
"$pdsim" profile --backend cpu --model tiny-llama-1024 --threads 1 --iters 1 --passes 1 --name test-cpu --out "$tmp/data/profiles" \
  >"$tmp/profile2.out" 2>&1 || fail "second profile: $(cat "$tmp/profile2.out")"
rows_after=$(grep -vc '^#' "$gemm")
[ "$rows_after" -gt "$rows_before" ] || fail "second model added no GEMM rows ($rows_before -> $rows_after)"
grep -q "^${first_row%,*}," "$gemm" || fail "first model's row ${first_row%,*} was dropped"
grep -q 'model shapes: tiny-llama-512' "$gemm" && grep -q 'model shapes: tiny-llama-1024' "$gemm" ||
  fail "provenance of both sweeps expected"
# Profiling the first model again replaces its rows and its run line (one line per grid).
# An elementwise row of an older op list (same tokens and FLOPs, other bytes
# and kernels: the residual adds before they were fused into the norms) goes too.
norms="$tmp/data/profiles/measured/test-cpu/elementwise_norms_residual.csv"
norm_rows=$(grep -vc '^#' "$norms")
stale=$(grep -v '^#' "$norms" | sed -n 2p | awk -F, -v OFS=, '{print $1, $2, $3 * 5 / 4, 4, $5}')
echo "$stale" >>"$norms"
"$pdsim" profile --backend cpu --model tiny-llama-512 --threads 1 --iters 1 --passes 1 --name test-cpu --out "$tmp/data/profiles" \
  >/dev/null 2>&1 || fail "third profile"
grep -q "^${stale%,*}," "$norms" && fail "a stale elementwise row survived re-profiling: $stale"
[ "$(grep -vc '^#' "$norms")" -eq "$norm_rows" ] || fail "re-profiling changed the elementwise row count"
[ "$(grep -c '^# run: .*model shapes: tiny-llama-512' "$gemm")" -eq 1 ] || fail "expected one run line for tiny-llama-512: $(grep '^#' "$gemm")"
[ "$(grep -c '^# run: .*model shapes: tiny-llama-1024' "$gemm")" -eq 1 ] || fail "the other model's run line was lost"
[ "$(grep -vc '^#' "$gemm")" -eq "$rows_after" ] || fail "re-profiling a model changed the row count"
dups=$(grep -v '^#' "$gemm" | cut -d, -f1-3 | sort | uniq -d | wc -l)
[ "$dups" -eq 0 ] || fail "duplicate GEMM shapes after merge"
gemv_rows=$(grep -v '^#' "$gemm" | grep -c '^1,')
python3 - "$tmp/data/profiles/gpus/test-cpu.json" "$rows_after" "$gemv_rows" <<'PY' || fail "device profile after merge"
import json, sys
p = json.load(open(sys.argv[1]))
rows, gemv = int(sys.argv[2]) - 1, int(sys.argv[3])
c = p["calibrated"]
# Every merged row is fitted as gemm, the m = 1 rows also as gemv.
assert gemv >= 10, f"{gemv} m = 1 rows: both models' expected"
assert c["gemv"]["rows_fit"] == gemv, f"gemv fit on {c['gemv']['rows_fit']} rows, the table has {gemv} with m = 1"
assert c["gemm"]["rows_fit"] == rows, f"gemm fit on {c['gemm']['rows_fit']} rows, want {rows}"
assert "m_half_rows" not in c["gemv"]
assert "elementwise" in c
PY
# The elementwise rows of both models stay, and the elementwise fit uses all of them.
elem="$tmp/data/profiles/measured/test-cpu/elementwise_norms_residual.csv"
grep -q 'model shapes: tiny-llama-512' "$elem" && grep -q 'model shapes: tiny-llama-1024' "$elem" ||
  fail "elementwise rows of both sweeps expected in $elem"
python3 - "$tmp/data/profiles/gpus/test-cpu.json" "$(grep -vc '^#' "$elem")" <<'PY' || fail "elementwise fit after merge"
import json, sys
e = json.load(open(sys.argv[1]))["calibrated"]["elementwise"]["norms_residual"]
assert e["rows_fit"] == int(sys.argv[2]) - 1, f"fit used {e['rows_fit']} rows, file has {int(sys.argv[2]) - 1}"
PY
# --refit measures nothing and fits the same factors on the tables as written
# (the profile fits on rows as written, its ceilings as stored); a changed
# table changes its class's factors only, and the profile says it was refitted.
prof="$tmp/data/profiles/gpus/test-cpu.json"
cp "$prof" "$tmp/before.json"
tables_before=$(cat "$tmp/data/profiles/measured/test-cpu/"*.csv | md5sum)
"$pdsim" profile --refit --name test-cpu --out "$tmp/data/profiles" >"$tmp/refit.out" 2>&1 || fail "refit: $(cat "$tmp/refit.out")"
grep -q "nothing measured" "$tmp/refit.out" || fail "refit output: $(cat "$tmp/refit.out")"
[ "$(cat "$tmp/data/profiles/measured/test-cpu/"*.csv | md5sum)" = "$tables_before" ] || fail "refit changed a table"
python3 -c 'import json, sys; a, b = (json.load(open(f))["calibrated"] for f in sys.argv[1:3]); assert a == b, (a, b)' \
  "$tmp/before.json" "$prof" || fail "refit on the unchanged tables did not reproduce the profile's factors"
gen="$tmp/data/profiles/measured/test-cpu/generation_attention_bf16.csv"
awk -F, -v OFS=, '/^#/ || /^batch/ { print; next } { $NF = $NF * 3; print }' "$gen" >"$tmp/gen3" && cp "$tmp/gen3" "$gen"
"$pdsim" profile --refit --name test-cpu --out "$tmp/data/profiles" >"$tmp/refit2.out" 2>&1 || fail "refit 2: $(cat "$tmp/refit2.out")"
python3 - "$tmp/before.json" "$prof" <<'PY' || fail "refit factors"
import json, sys
before, after = (json.load(open(f)) for f in sys.argv[1:3])
b, a = before["calibrated"], after["calibrated"]
for k in b:
    if k != "attention_decode":
        assert a[k] == b[k], (k, a[k], b[k])
# Every decode row 3x slower: the fit must price them slower (fitted on the same rows).
assert a["attention_decode"] != b["attention_decode"], a["attention_decode"]
assert a["attention_decode"]["rows_fit"] == b["attention_decode"]["rows_fit"]
assert "refitted by `pdsim profile --refit" in after["sources"]["calibrated"], after["sources"]
assert {k: v for k, v in after.items() if k not in ("calibrated", "sources")} == \
       {k: v for k, v in before.items() if k not in ("calibrated", "sources")}, "refit changed the ceilings"
assert list(after) == list(before) + [k for k in after if k not in before], "key order"
PY
"$pdsim" profile --refit --name nothing-here --out "$tmp/data/profiles" 2>"$tmp/err" >/dev/null
[ $? -eq 2 ] && grep -q 'gpus/nothing-here.json' "$tmp/err" || fail "refit of a missing profile: want exit 2 naming it: $(cat "$tmp/err")"
"$pdsim" profile --refit --model tiny-llama-512 --name test-cpu --out "$tmp/data/profiles" 2>"$tmp/err" >/dev/null
[ $? -eq 2 ] && grep -q -- '--refit' "$tmp/err" || fail "refit with --model: want exit 2: $(cat "$tmp/err")"
"$pdsim" profile --name test-cpu --out "$tmp/data/profiles" 2>"$tmp/err" >/dev/null
[ $? -eq 2 ] && grep -q -- '--model' "$tmp/err" || fail "profile without --model: want exit 2: $(cat "$tmp/err")"

# Tables another source measured are never overwritten: refused before measuring.
mkdir -p "$tmp/data/profiles/measured/vendor"
printf 'm,n,k,latency_us\n1,64,64,10\n' >"$tmp/data/profiles/measured/vendor/gemm_bf16.csv"
"$pdsim" profile --backend cpu --model tiny-llama-512 --iters 1 --name vendor --out "$tmp/data/profiles" 2>"$tmp/err"
[ $? -eq 2 ] || fail "profile into another source's tables: want exit 2"
grep -q 'vendor/gemm_bf16.csv' "$tmp/err" || fail "error should name the file: $(cat "$tmp/err")"
[ "$(cat "$tmp/data/profiles/measured/vendor/gemm_bf16.csv")" = "$(printf 'm,n,k,latency_us\n1,64,64,10')" ] ||
  fail "vendor table was modified"

# ... nor tables measured on another device or configuration (here: another thread count).
"$pdsim" profile --backend cpu --model tiny-llama-512 --threads 2 --iters 1 --passes 1 --name test-cpu --out "$tmp/data/profiles" \
  2>"$tmp/err" >/dev/null
[ $? -eq 2 ] && grep -q 'another device or configuration' "$tmp/err" || fail "profile of another configuration into test-cpu: $(cat "$tmp/err")"

# validate: a reduced run of the shipped real-kernel scenario.
"$pdsim" validate "$src/scenarios/tiny-real-cpu.json" --out "$tmp/val" --set workload.num_requests=4 \
  --set real_kernel.iters=1 >"$tmp/val.out" 2>&1 || fail "validate: $(cat "$tmp/val.out")"
python3 - "$tmp/val/validation.json" <<'PY' || fail "validation.json content"
import json, sys
v = json.load(open(sys.argv[1]))
for m in ("roofline", "profiled", "real"):
    assert v[m]["requests"]["completed"] == 4, m
    assert "ttft_s" in v[m] and "tpot_s" in v[m], m
for m in ("roofline", "profiled"):
    assert sorted(v["rel_err"][m]) == sorted(f"{x}_{q}" for x in ("ttft", "tpot", "tbt") for q in ("p50", "p90", "p99")), v["rel_err"][m]
    for k in v["rel_err"][m]:
        r = v["rel_err"][m][k]
        mk, q = k.split("_")
        want = v[m][mk + "_s"][q] / v["real"][mk + "_s"][q] - 1
        assert abs(r - want) < 1e-9, (m, k, r, want)
assert v[ "real"]["scenario"]["cost_model"] == "real"
assert v["pdsim_source"], "no pdsim_source"
# Per-op breakdown of one prefill and one decode batch: every op priced by every model, totals add up.
for phase in ("prefill", "decode"):
    ph = v["op_breakdown"][phase]
    assert "qkv_proj" in ph["ops_s"] and "lm_head" in ph["ops_s"], phase
    for m in ("roofline", "profiled", "real"):
        s = sum(op[m] for op in ph["ops_s"].values())
        assert all(op[m] >= 0 for op in ph["ops_s"].values()), (phase, m)
        assert abs(s - ph["total_s"][m]) <= 1e-9 * ph["total_s"][m], (phase, m, s, ph["total_s"][m])
assert "attention_prefill" in v["op_breakdown"]["prefill"]["ops_s"]
assert "attention_decode" in v["op_breakdown"]["decode"]["ops_s"]
# Per batch: every batch of the real run, each pool's count as its summary says;
# the decode steps' tokens are the TBT samples (one per token after a request's first).
ba = v["batch_agreement"]
assert sorted(ba) == ["decode", "prefill"], sorted(ba)
for pool, a in ba.items():
    assert a["batches"] == v["real"]["pools"][pool]["batches"], (pool, a["batches"])
    for m in ("roofline", "profiled"):
        e = a["rel_err"][m]
        q = [e[k] for k in ("p1", "p10", "p50", "p90", "p99")]
        assert q == sorted(q) and q[0] > -1, (pool, m, e)
    ratio = [w["real_s"] / max(w["roofline_s"], w["profiled_s"]) for w in a["worst"]]
    assert ratio == sorted(ratio, reverse=True) and len(ratio) == min(5, a["batches"]), (pool, ratio)
    over = a["outliers"]["batches"]
    assert all((r > 1.5) == (i < over) for i, r in enumerate(ratio)), (pool, over, ratio)
assert ba["decode"]["outliers"]["decode_tokens_total"] == v["real"]["tbt_s"]["count"], ba["decode"]["outliers"]
assert ba["prefill"]["outliers"]["decode_tokens_total"] == 0
for m in ("roofline", "profiled", "real"):
    f = v[m]["first_tbt_s"]
    assert f["count"] == 4 and 0 <= f["at_or_above_tbt_p99"] <= f["count"], (m, f)
PY
# --repeat: the real run N times; "real" is the run with the median TPOT p50 (the lower one of two).
"$pdsim" validate "$src/scenarios/tiny-real-cpu.json" --out "$tmp/rep" --set workload.num_requests=4 \
  --set real_kernel.iters=1 --repeat 2 >"$tmp/rep.out" 2>&1 || fail "validate --repeat: $(cat "$tmp/rep.out")"
python3 - "$tmp/rep/validation.json" <<'PY' || fail "validate --repeat content"
import json, sys
v = json.load(open(sys.argv[1]))
runs = v["real_repeats"]
assert len(runs) == 2, runs
assert v["real"]["tpot_s"]["p50"] == min(r["tpot_p50"] for r in runs), (v["real"]["tpot_s"], runs)
for m in ("roofline", "profiled"):
    for k in ("ttft_p50", "tpot_p50"):
        mk, q = k.split("_")
        errs = sorted(v[m][mk + "_s"][q] / r[k] - 1 for r in runs)
        s = v["rel_err_repeats"][m][k]
        assert abs(s["min"] - errs[0]) < 1e-12 and abs(s["max"] - errs[-1]) < 1e-12, (m, k, s, errs)
        assert abs(s["median"] - (errs[0] + errs[1]) / 2) < 1e-12, (m, k, s, errs)
# Each run's busy-time error: the median run's equals the one batch_agreement
# gives pool by pool (summed price over summed measured time, all pools).
median = min(range(2), key=lambda i: runs[i]["tpot_p50"])
ba = v["batch_agreement"]
real_sum = sum(p["real_busy_s"] for p in ba.values())
for m in ("roofline", "profiled"):
    model_sum = sum(p["real_busy_s"] * (1 + p["rel_err"][m]["total"]) for p in ba.values())
    got = runs[median]["busy_time_rel_err"][m]
    assert abs(got - (model_sum / real_sum - 1)) < 1e-9, (m, got, model_sum / real_sum - 1)
    assert all(abs(r["busy_time_rel_err"][m]) < 1 for r in runs), runs
PY
grep -q "^| run | real TTFT p50 (ms) | real TPOT p50 (ms) | roofline TTFT p50 | roofline TPOT p50 | roofline busy time |" \
  "$tmp/rep/validation.md" || fail "validation.md's repeats table has no busy time column"

grep -q "^Real run repeated 2 times" "$tmp/rep/validation.md" || fail "validation.md has no repeats table"
"$pdsim" validate "$src/scenarios/tiny-real-cpu.json" --out "$tmp/rep2" --repeat 2 --timings "$tmp/none.csv" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q -- "--repeat" "$tmp/err" || fail "--repeat with --timings: want exit 2 naming --repeat: $(cat "$tmp/err")"
[ -s "$tmp/val/validation.md" ] || fail "no validation.md"
grep -q "| real |" "$tmp/val/validation.md" || fail "validation.md has no real row"
grep -q "^Per op, one decode batch" "$tmp/val/validation.md" || fail "validation.md has no per-op decode table"
grep -q "^| decode | [0-9]* | profiled |" "$tmp/val/validation.md" || fail "validation.md has no per-batch decode row"
grep -q "^TBT p99 tail (the top 1% of gaps" "$tmp/val/validation.md" || fail "validation.md has no TBT tail line"

# Timings file: the first run measures and records, the second replays every
# batch: same requests and metrics (only summary.json's real_kernel counts
# differ), the file unchanged; a third replay is byte-identical to the second.
# 50 req/s: the 5 requests arrive while the first prefills, so later ones are batched and decode
# together at different contexts whatever the host's speed (at 2 req/s that was left to timing).
run_t() { "$pdsim" run "$src/scenarios/tiny-real-cpu.json" --set workload.num_requests=5 --set real_kernel.iters=1 \
  --set workload.arrival.rate_rps=50 "$@"; }
run_t --out "$tmp/t1" --timings "$tmp/timings.csv" >/dev/null 2>&1 || fail "run with --timings"
grep -q '^# device: ' "$tmp/timings.csv" || fail "timings file has no device line"
# Each batch shape lists its sequences (pandas reads the file); the totals are
# their counts and sums, and some decode step ran sequences of different contexts.
# check_shapes FILE [prefixed]: "prefixed" demands some prompt chunk after a cached prefix.
check_shapes() {
python3 - "$@" <<'PY'
import csv, sys
rows = list(csv.DictReader(l for l in open(sys.argv[1]) if not l.startswith("#")))
assert rows, "no rows"
ragged = prefixed = 0
for r in rows:
    p = [int(x) for x in r["prefill_lens"].split()]
    c = [int(x) for x in r["prefill_prefix"].split()]
    d = [int(x) for x in r["decode_ctx"].split()]
    assert len(c) == len(p) and list(zip(p, c)) == sorted(zip(p, c)) and d == sorted(d), r
    assert (len(p), sum(p), len(d), sum(d)) == tuple(int(r[k]) for k in
        ("prefill_seqs", "prefill_tokens", "decode_seqs", "decode_kv_tokens")), r
    ragged += len(set(d)) > 1
    prefixed += any(x > 0 for x in c)
assert ragged > 0, "no decode step with contexts of different lengths"
if sys.argv[2:] == ["prefixed"]:
    assert prefixed > 0, "no prompt chunk after a cached prefix"
else:
    assert prefixed == 0, "a prefix where the scenario has none"
PY
}
check_shapes "$tmp/timings.csv" || fail "timings file shapes"
# Colocated chunked prefill (64-token chunks): later chunks run after their cached prefix.
"$pdsim" run "$src/scenarios/tiny-real-cpu.json" --set workload.num_requests=4 --set real_kernel.iters=1 \
  --set workload.arrival.rate_rps=50 --set 'cluster={"mode": "colocated", "colocated": {"gpu": "host-cpu", "instances": 1, "tp": 1,
  "max_batch_tokens": 1024, "max_batch_requests": 8, "max_batch_size": 32, "policy": "chunked", "chunk_tokens": 64}}' \
  --out "$tmp/chunked" --timings "$tmp/chunked.csv" >/dev/null 2>"$tmp/err" || fail "chunked real run: $(cat "$tmp/err")"
check_shapes "$tmp/chunked.csv" prefixed || fail "chunked timings shapes"
# validate's per-op prefill batch in a chunked pool is a chunk after its prefix (what such a pool runs).
"$pdsim" validate "$src/scenarios/tiny-real-cpu-chunked.json" --set workload.num_requests=4 \
  --set real_kernel.iters=1 --out "$tmp/valc" >/dev/null 2>"$tmp/err" || fail "validate chunked: $(cat "$tmp/err")"
python3 - "$tmp/valc/validation.json" <<'PY' || fail "chunked validate's per-op prefill batch or by-kind agreement"
import json, sys
v = json.load(open(sys.argv[1]))
ph = v["op_breakdown"]["prefill"]
assert ph["prompt_tokens"] == 64 and ph["cached_tokens"] > 0, ph
assert ph["ops_s"]["attention_prefill"]["real"] > 0, ph
# The colocated pool's batch agreement by kind: the kinds partition the batches and
# their busy time; chunks after a prefix are counted apart.
a = v["batch_agreement"]["colocated"]
kinds = a["by_kind"]
parts = [kinds[k] for k in ("prefill", "decode", "mixed") if k in kinds]
assert sum(k["batches"] for k in parts) == a["batches"], kinds
assert abs(sum(k["real_busy_s"] for k in parts) - a["real_busy_s"]) < 1e-9, kinds
assert kinds["with_prefix"]["batches"] > 0, kinds
assert set(kinds["with_prefix"]["rel_err"]) == set(a["rel_err"]), kinds
PY
grep -q "^colocated by kind of batch" "$tmp/valc/validation.md" || fail "validation.md has no by-kind table"
grep -q "^Per op, one prefill batch (1 prompt of 64 tokens after [0-9]* cached (a chunk)" "$tmp/valc/validation.md" ||
  fail "validation.md does not name the chunk"

cp "$tmp/timings.csv" "$tmp/timings0.csv"
run_t --out "$tmp/t2" --timings "$tmp/timings.csv" >/dev/null 2>&1 || fail "replay with --timings"
cmp -s "$tmp/t1/requests.csv" "$tmp/t2/requests.csv" || fail "replayed requests.csv differs"
python3 - "$tmp/t1/summary.json" "$tmp/t2/summary.json" <<'PY' || fail "replayed summary differs beyond real_kernel counts"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
ra, rb = a.pop("real_kernel"), b.pop("real_kernel")
assert a == b
assert ra["batches_measured"] > 0 and ra["batches_replayed"] == 0, ra
assert ra["layers_run"] == "one" and rb["layers_run"] == "", (ra, rb)  # the replay executed nothing
assert rb["batches_measured"] == 0 and rb["batches_replayed"] == ra["batches_measured"] + ra["batches_memoized"], (ra, rb)
PY
cmp -s "$tmp/timings.csv" "$tmp/timings0.csv" || fail "a full replay rewrote the timings file"
run_t --out "$tmp/t2b" --timings "$tmp/timings.csv" >/dev/null 2>&1 || fail "second replay"
for f in summary.json requests.csv; do cmp -s "$tmp/t2/$f" "$tmp/t2b/$f" || fail "replays differ in $f"; done
# ... and not with a file for another model or device, or a garbled one.
run_t --out "$tmp/t3" --timings "$tmp/timings.csv" --set model=tiny-llama-1024 2>"$tmp/err" >/dev/null
[ $? -eq 2 ] && grep -q 'timings.csv:2: .*tiny-llama-1024' "$tmp/err" || fail "timings of another model: $(cat "$tmp/err")"
sed 's/^# device: .*/# device: some other machine/' "$tmp/timings0.csv" >"$tmp/other.csv"
run_t --out "$tmp/t4" --timings "$tmp/other.csv" 2>"$tmp/err" >/dev/null
[ $? -eq 2 ] && grep -q 'some other machine' "$tmp/err" || fail "timings of another device: $(cat "$tmp/err")"
# ... nor one layer's times (x L) as all layers' (the mode is bound with the device).
run_t --out "$tmp/t4b" --timings "$tmp/timings.csv" --set real_kernel.layers=all 2>"$tmp/err" >/dev/null
[ $? -eq 2 ] && grep -q 'layers: all' "$tmp/err" || fail "one-layer timings replayed in all-layers mode: $(cat "$tmp/err")"
# All layers run: the summary says so.
run_t --out "$tmp/t6" --set real_kernel.layers=all >/dev/null 2>&1 || fail "run with real_kernel.layers=all"
grep -q '"layers_run": "all"' "$tmp/t6/summary.json" || fail "summary should say all layers ran"
sed '6s/,[^,]*$/,abc/' "$tmp/timings0.csv" >"$tmp/bad.csv"
run_t --out "$tmp/t5" --timings "$tmp/bad.csv" 2>"$tmp/err" >/dev/null
[ $? -eq 2 ] && grep -q 'bad.csv:6: ' "$tmp/err" || fail "garbled timings row: $(cat "$tmp/err")"
[ ! -e "$tmp/t5/summary.json" ] || fail "a failed run left a summary"
# Totals that contradict the lists, and a file keyed by totals only (before 2026-12-03), are refused.
awk -F, -v OFS=, 'NR == 6 { $5 = $5 + 1 } 1' "$tmp/timings0.csv" >"$tmp/sums.csv"
run_t --out "$tmp/t7" --timings "$tmp/sums.csv" 2>"$tmp/err" >/dev/null
[ $? -eq 2 ] && grep -q 'sums.csv:6: .*do not match' "$tmp/err" || fail "totals off their lists: $(cat "$tmp/err")"
# ... and so is a prefix list of another length than the prompt list.
awk -F, -v OFS=, 'NR == 6 { $8 = $8 " 5" } 1' "$tmp/timings0.csv" >"$tmp/prefixes.csv"
run_t --out "$tmp/t7b" --timings "$tmp/prefixes.csv" 2>"$tmp/err" >/dev/null
[ $? -eq 2 ] && grep -q 'prefixes.csv:6: not a valid timings row' "$tmp/err" || fail "a prefix list off its prompts: $(cat "$tmp/err")"
cut -d, -f1-6,10- "$tmp/timings0.csv" \
  | sed '4s/.*/tp,prefill_seqs,prefill_tokens,decode_seqs,decode_kv_tokens,logit_rows,op,seconds/' >"$tmp/old.csv"
run_t --out "$tmp/t8" --timings "$tmp/old.csv" 2>"$tmp/err" >/dev/null
[ $? -eq 2 ] && grep -q 'old.csv:4: .*measure again' "$tmp/err" || fail "an old-format timings file: $(cat "$tmp/err")"
# A file from before prefixes ran (no prefill_prefix column) reads as prefix 0 everywhere: this
# scenario has none, so it replays every batch.
cut -d, -f1-7,9- "$tmp/timings0.csv" \
  | sed '4s/.*/tp,prefill_seqs,prefill_tokens,decode_seqs,decode_kv_tokens,logit_rows,prefill_lens,decode_ctx,op,seconds/' \
  >"$tmp/noprefix.csv"
run_t --out "$tmp/t9" --timings "$tmp/noprefix.csv" >/dev/null 2>"$tmp/err" || fail "a no-prefix timings file: $(cat "$tmp/err")"
grep -q '"batches_measured": 0' "$tmp/t9/summary.json" || fail "a no-prefix timings file did not replay every batch"
cmp -s "$tmp/t2/requests.csv" "$tmp/t9/requests.csv" || fail "no-prefix replay differs in requests.csv"

# --only decode-attention: the decode attention table alone, its run line saying so, no device profile.
"$pdsim" profile --backend cpu --model tiny-llama-512 --threads 1 --iters 1 --name only-dec --out "$tmp/od" \
  --only decode-attention >/dev/null || fail "profile --only decode-attention exited $?"
[ "$(ls "$tmp/od/measured/only-dec")" = generation_attention_bf16.csv ] ||
  fail "--only decode-attention wrote: $(ls "$tmp/od/measured/only-dec")"
[ ! -e "$tmp/od/gpus" ] || fail "--only decode-attention wrote a device profile"
# (and the default 2 passes, each point keeping its fastest)
grep -q '^# run: pdsim profile .* --only decode-attention;.*fastest of 2 passes over the sweep; date' \
  "$tmp/od/measured/only-dec/generation_attention_bf16.csv" ||
  fail "--only decode-attention: the run line does not name it"
[ "$(grep -cv '^#' "$tmp/od/measured/only-dec/generation_attention_bf16.csv")" -gt 10 ] || fail "--only decode-attention: too few rows"
"$pdsim" profile --backend cpu --model tiny-llama-512 --out "$tmp/x" --only gemm 2>/dev/null
[ $? -ne 0 ] || fail "--only gemm: want an error"

# Bad input: exit 2 with one line.
"$pdsim" profile --backend cpu --model no-such-model --out "$tmp/x" 2>/dev/null; [ $? -eq 2 ] || fail "unknown model: want exit 2"
"$pdsim" profile --backend cpu --model opt-13b --out "$tmp/x" 2>/dev/null; [ $? -eq 2 ] || fail "non-gated model: want exit 2"
if ! "$pdsim" devices | grep -q GiB; then
  "$pdsim" profile --backend cuda --model tiny-llama-512 --out "$tmp/x" 2>/dev/null; [ $? -eq 2 ] || fail "cuda without a device: want exit 2"
fi
"$pdsim" profile --backend cpu --model tiny-llama-512 --name ../escape --out "$tmp/x" 2>/dev/null; [ $? -eq 2 ] || fail "--name with a path: want exit 2"
"$pdsim" validate "$tmp/none.json" 2>/dev/null; [ $? -eq 2 ] || fail "missing scenario: want exit 2"
"$pdsim" run "$src/scenarios/tiny-real-cpu.json" --out "$tmp/r" --set real_kernel.backend=gpu 2>/dev/null
[ $? -eq 2 ] || fail "real_kernel.backend=gpu: want exit 2"
echo ok
