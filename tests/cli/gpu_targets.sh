#!/usr/bin/env bash
# tools/gpu_targets.py reads issue 4's GPU targets off a Google Benchmark JSON
# and validation files: per kernel variant met / missed / skipped, the right
# rows selected (GEMM only at m >= 1024), errors in validation.json judged at
# 10%; an unreadable benchmark file is exit 1 naming it.
set -u
src=$1
fail() { echo "FAIL: $*"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/bench.json" <<'JSON'
{"context": {"host_name": "fake-h100", "date": "2026-11-25"},
 "benchmarks": [
  {"name": "BM_Gemm/model:0/proj:0/m:1/manual_time", "run_type": "iteration", "peak_frac": 0.01},
  {"name": "BM_Gemm/model:0/proj:0/m:1024/manual_time", "run_type": "iteration", "peak_frac": 0.85},
  {"name": "BM_Gemm/model:0/proj:2/m:4096/manual_time", "run_type": "iteration", "peak_frac": 0.90},
  {"name": "BM_Gemm/model:1/proj:2/m:4096/manual_time", "run_type": "iteration", "peak_frac": 0.70},
  {"name": "BM_Gemm/model:1/proj:2/m:4096/manual_time_mean", "run_type": "aggregate", "peak_frac": 0.10},
  {"name": "BM_PrefillAttention/model:0/seqs:1/kernel:0/manual_time", "run_type": "iteration", "peak_frac": 0.33},
  {"name": "BM_PrefillAttention/model:0/seqs:4/kernel:0/manual_time", "run_type": "iteration", "peak_frac": 0.35},
  {"name": "BM_PrefillAttention/model:0/seqs:4/kernel:0/prefix:3584/manual_time", "run_type": "iteration", "peak_frac": 0.90,
   "real_time": 210.0, "time_unit": "us"},
  {"name": "BM_PrefillAttention/model:0/seqs:1/kernel:2/manual_time", "run_type": "iteration", "error_occurred": true,
   "error_message": "wgmma does not apply: the device is sm_80"},
  {"name": "BM_DecodeAttention/model:0/batch:8/kernel:0/manual_time", "run_type": "iteration", "bw_frac": 0.75},
  {"name": "BM_DecodeAttention/model:0/batch:64/kernel:0/manual_time", "run_type": "iteration", "bw_frac": 0.69},
  {"name": "BM_DecodeAttention/model:0/batch:8/kernel:1/manual_time", "run_type": "iteration", "bw_frac": 0.40},
  {"name": "BM_DecodeAttention/model:1/batch:8/kernel:0/manual_time", "run_type": "iteration", "bw_frac": 0.50},
  {"name": "BM_DecodeAttention/model:1/batch:8/kernel:3/manual_time", "run_type": "iteration", "bw_frac": 0.78},
  {"name": "BM_Elementwise/model:0/op:0/tokens:4096/manual_time", "run_type": "iteration", "real_time": 40.5, "time_unit": "us", "bw_frac": 0.83},
  {"name": "BM_Elementwise/model:0/op:0/tokens:1/manual_time", "run_type": "iteration", "real_time": 3.25, "bw_frac": 0.001},
  {"name": "BM_Elementwise/model:0/op:0/tokens:16/manual_time", "run_type": "iteration", "real_time": 3.5, "bw_frac": 0.01},
  {"name": "BM_Elementwise/model:1/op:2/tokens:1/manual_time", "run_type": "iteration", "error_occurred": true,
   "error_message": "no CUDA device"}
 ]}
JSON
cat >"$tmp/validation.json" <<'JSON'
{"rel_err": {"roofline": {"ttft_p50": 0.05, "ttft_p90": 0.0, "tpot_p50": -0.12, "tpot_p90": 0.0, "tbt_p99": -0.47},
             "profiled": {"ttft_p50": -0.10, "ttft_p90": 0.0, "tpot_p50": 0.02, "tpot_p90": 0.0, "tbt_p99": -0.45}},
 "real": {"tbt_s": {"p99": 0.0177}},
 "batch_agreement": {
   "prefill": {"batches": 388, "outliers": {"factor": 1.5, "batches": 0, "decode_tokens": 0, "decode_tokens_total": 0}, "worst": []},
   "decode": {"batches": 6909, "outliers": {"factor": 1.5, "batches": 80, "decode_tokens": 762, "decode_tokens_total": 50800},
              "worst": [{"start_s": 1.0, "decode_seqs": 9, "decode_kv_tokens": 9774.0, "real_s": 0.0182,
                         "roofline_s": 0.0085, "profiled_s": 0.0086}]}}}
JSON
python3 "$src/tools/gpu_targets.py" --bench "$tmp/bench.json" --validation "$tmp/validation.json" --out "$tmp/t.md" \
  >"$tmp/out" 2>&1 || fail "gpu_targets: $(cat "$tmp/out")"
cmp -s "$tmp/out" "$tmp/t.md" || fail "--out differs from what was printed"
row() { grep -F "| $1" "$tmp/t.md" || echo "(no row '$1')"; }
# has LINE TEXT: the table line holds TEXT.
has() { case "$1" in *"$2"*) ;; *) fail "expected '$2' in: $1" ;; esac; }
# GEMM: the m >= 1024 rows only (0.85, 0.90, 0.70; not m = 1, not the aggregate): median 0.85, met.
has "$(row 'GEMM peak_frac (m >= 1024)')" "median 0.850, min 0.700 over 3 rows"
has "$(row 'GEMM peak_frac (m >= 1024)')" "**met**"
# Decode and prefill: one row per kernel variant and model shape (a target can hold at one shape only).
has "$(row 'decode attention bw_frac, 256k tokens (regs, llama-3.1-8b)')" "median 0.720, min 0.690 over 2 rows"
has "$(row 'decode attention bw_frac, 256k tokens (regs, llama-3.1-8b)')" "**met**"
has "$(row 'decode attention bw_frac, 256k tokens (regs, llama-3.1-70b)')" "median 0.500, min 0.500 over 1 rows"
has "$(row 'decode attention bw_frac, 256k tokens (regs, llama-3.1-70b)')" "**missed**"
has "$(row 'decode attention bw_frac, 256k tokens (smem, llama-3.1-8b)')" "**missed**"
has "$(row 'decode attention bw_frac, 256k tokens (mma, llama-3.1-70b)')" "median 0.780, min 0.780 over 1 rows"
has "$(row 'decode attention bw_frac, 256k tokens (mma, llama-3.1-70b)')" "**met**"
has "$(row 'prefill attention peak_frac, 4k prompts (mma, llama-3.1-8b)')" "median 0.340"
# A chunk after a cached prefix is not a 4k prompt: listed apart, not in the target's median.
has "$(row 'mma, llama-3.1-8b | 4 chunks of 512 after 3584 cached')" "| 210.0 us | 0.900 |"
has "$(row 'prefill attention peak_frac, 4k prompts (mma, llama-3.1-8b)')" "**missed**"
has "$(row 'prefill attention peak_frac, 4k prompts (wgmma, llama-3.1-8b)')" "skipped: wgmma does not apply: the device is sm_80"
has "$(row 'roofline vs real tpot_p50')" "-12.0%"
has "$(row 'roofline vs real tpot_p50')" "**missed**"
has "$(row 'profiled vs real ttft_p50')" "**met**"  # exactly 10% is within
# The TBT tail line (not a target): errors, and the decode outliers' share of decode tokens, not the prefill pool's.
has "$(grep -F -- '- TBT p99 (validation.json)' "$tmp/t.md")" \
  "real 17.70 ms; roofline -47.0%, profiled -45.0%; decode: 80 of 6909 batches over 1.5x every model, 1.50% of decode tokens (worst: 9 seqs, 9774 KV tokens, real 18.20 ms vs roofline 8.50, profiled 8.60)"
# Elementwise (not a target): fewest and most tokens of each (op, model), in token order, errored rows left out.
has "$(row 'rmsnorm | llama-3.1-8b')" "| 1: 3.2 | 4096: 40.5 us | 0.830 |"
grep -qF "| silu_gate |" "$tmp/t.md" && fail "an errored elementwise row was listed"
python3 "$src/tools/gpu_targets.py" --bench "$tmp/missing.json" >/dev/null 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "missing.json" "$tmp/err" || fail "unreadable bench file: want exit 1 naming it: $(cat "$tmp/err")"
# A run stopped by its time limit: whole rows, no closing brackets. The rows are read and the
# output says the run was cut; a file cut inside a row is still an error naming it.
head -n 8 "$tmp/bench.json" | sed '$ s/,$//' >"$tmp/cut.json"
python3 "$src/tools/gpu_targets.py" --bench "$tmp/cut.json" >"$tmp/out" 2>&1 || fail "cut-short bench: $(cat "$tmp/out")"
grep -q "Benchmark run incomplete: .*cut.json. was cut short .*the 6 rows it finished are read" "$tmp/out" ||
  fail "cut-short bench: want the note: $(head -5 "$tmp/out")"
has "$(grep -F '| GEMM peak_frac (m >= 1024)' "$tmp/out")" "median 0.850, min 0.700 over 3 rows"
head -c 200 "$tmp/bench.json" >"$tmp/torn.json"
python3 "$src/tools/gpu_targets.py" --bench "$tmp/torn.json" >/dev/null 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "torn.json" "$tmp/err" || fail "a file cut inside a row: want exit 1 naming it: $(cat "$tmp/err")"
echo "gpu_targets ok"
