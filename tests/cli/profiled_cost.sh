#!/usr/bin/env bash
# pdsim cost --cost-model profiled: per-op "source" in --json; a GPU without
# tables and a corrupt table are input errors (exit 2) naming the file.
set -u
pdsim=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

out=$("$pdsim" cost --model llama-3.1-8b --gpu h100-sxm --cost-model profiled --decode 2048x64 --json) || fail "profiled cost exited $?"
grep -q '"cost_model": "profiled"' <<<"$out" || fail "no cost_model profiled in: $out"
grep -q '"source": "measured"' <<<"$out" || fail "no measured op in: $out"
grep -q '"source": "roofline"' <<<"$out" || fail "no roofline-priced elementwise op in: $out"
n_ops=$(grep -c '"name":' <<<"$out")
n_src=$(grep -cE '"source": "(measured|interpolated|roofline-fallback|roofline)"' <<<"$out")
[ "$n_ops" -eq "$n_src" ] || fail "$n_ops ops but $n_src sources"
out=$("$pdsim" cost --model llama-2-7b --gpu a100-sxm-80g --cost-model profiled --prefill 30000 --json) || fail "long prompt exited $?"
grep -q '"source": "roofline-fallback"' <<<"$out" || fail "a 30000-token prompt is beyond the GEMM table but nothing is flagged"

"$pdsim" cost --model llama-3.1-8b --gpu h200 --cost-model profiled --decode 100 2>"$tmp/err" && fail "h200 has no tables but exited 0"
rc=$?
[ "$rc" -eq 2 ] || fail "h200: exit $rc, want 2"
grep -q 'h200' "$tmp/err" && grep -q 'profiles/measured/h200/gemm_bf16.csv' "$tmp/err" || fail "h200 message: $(cat "$tmp/err")"

# A corrupt copy of the shipped data: line 12 of the H100 GEMM table garbled.
mkdir -p "$tmp/data/profiles"
cp -r "$src/profiles/models.json" "$src/profiles/gpus" "$src/profiles/measured" "$tmp/data/profiles/"
chmod -R u+w "$tmp/data"
sed -i '12s/.*/1,2,3,oops/' "$tmp/data/profiles/measured/h100-sxm/gemm_bf16.csv"
"$pdsim" --data-dir "$tmp/data" cost --model llama-3.1-8b --gpu h100-sxm --cost-model profiled --decode 100 2>"$tmp/err" && fail "corrupt table exited 0"
rc=$?
[ "$rc" -eq 2 ] || fail "corrupt table: exit $rc, want 2"
grep -q 'gemm_bf16.csv:12: column latency_us' "$tmp/err" || fail "corrupt table message: $(cat "$tmp/err")"

# A scenario can ask for it.
"$pdsim" run "$src/scenarios/quickstart.json" --set cost_model=profiled --set workload.num_requests=50 --out "$tmp/run" --quiet ||
  fail "quickstart with cost_model profiled exited $?"
grep -q '"completed": 50' "$tmp/run/summary.json" || fail "profiled quickstart did not complete 50 requests"
echo "profiled cost ok"
