#!/usr/bin/env bash
# pdsim cost --json prints one object with total_s and a per-op breakdown.
set -eu
pdsim=$1
out=$("$pdsim" cost --model llama-3.1-8b --gpu h100-sxm --prefill 1024x4 --json)
for key in '"total_s"' '"ops"' '"name": "qkv_proj"' '"bound"' '"time_s"' '"flops"' '"bytes"' '"phase": "prefill"' '"sequences": 4'; do
  grep -q "$key" <<<"$out" || { echo "FAIL: missing $key in: $out"; exit 1; }
done
out=$("$pdsim" cost --model llama-3.1-70b --gpu h100-sxm --tp 4 --decode 2048x64 --json)
grep -q '"name": "tp_allreduce"' <<<"$out" || { echo "FAIL: no all-reduce at tp 4"; exit 1; }
grep -q '"name": "attention_decode"' <<<"$out" || { echo "FAIL: no decode attention"; exit 1; }
"$pdsim" cost --model llama-3.1-8b --gpu h100-sxm --decode 100 >/dev/null
# A chunk after a cached prefix (LEN+PREFIX): attention over the prefix and causally over
# the chunk (4 heads*hd FLOPs per query-key pair, 32 heads x 128 dims x 32 layers for
# llama-3.1-8b), the GEMMs those of the 512 new tokens alone.
"$pdsim" cost --model llama-3.1-8b --gpu h100-sxm --prefill 512+3584 --json >"${TMPDIR:-/tmp}/chunk.$$.json"
"$pdsim" cost --model llama-3.1-8b --gpu h100-sxm --prefill 512 --json >"${TMPDIR:-/tmp}/plain.$$.json"
python3 - "${TMPDIR:-/tmp}/chunk.$$.json" "${TMPDIR:-/tmp}/plain.$$.json" <<'PY' || { echo "FAIL: prefill after a prefix"; exit 1; }
import json, sys
chunk, plain = (json.load(open(p)) for p in sys.argv[1:])
op = lambda j, n: next(o for o in j["ops"] if o["name"] == n)
pairs = 512 * 3584 + 512 * 513 / 2
assert abs(op(chunk, "attention_prefill")["flops"] - 4 * 32 * 128 * pairs * 32) < 1e3, op(chunk, "attention_prefill")
assert op(chunk, "qkv_proj")["flops"] == op(plain, "qkv_proj")["flops"]
assert chunk["total_s"] > plain["total_s"]
assert (chunk["new_tokens"], chunk["cached_tokens"]) == (512, 3584), chunk
assert (plain["new_tokens"], plain["cached_tokens"]) == (512, 0), plain
PY
rm -f "${TMPDIR:-/tmp}/chunk.$$.json" "${TMPDIR:-/tmp}/plain.$$.json"
"$pdsim" cost --model llama-3.1-8b --gpu h100-sxm --prefill 512+3584x2 | head -1 | grep -q "prefill of 2 sequences (1024 new tokens after 7168 cached)" ||
  { echo "FAIL: the text header does not name the cached prefix"; exit 1; }
for bad in 512+ 512+-3 512+x2 +5 "512+ 3" 512x-2 -4; do
  if "$pdsim" cost --model llama-3.1-8b --gpu h100-sxm --prefill "$bad" 2>/dev/null; then echo "FAIL: --prefill $bad accepted"; exit 1; fi
done
# --cost-model real: the kernels run here (tiny model, CPU backend); the JSON
# says what ran them, with the options given; those options without the
# real model are an error, not ignored.
out=$("$pdsim" cost --model tiny-llama-512 --gpu host-cpu --decode 64x2 --cost-model real --backend cpu --threads 1 \
  --iters 2 --json)
python3 - "$out" <<'PY' || { echo "FAIL: cost --cost-model real json: $out"; exit 1; }
import json, sys
j = json.loads(sys.argv[1])
r = j["real_kernel"]
assert (r["backend"], r["threads"], r["iters"], r["layers"]) == ("cpu", 1, 2, "one"), r
assert "1 of" in r["device"], r  # one thread of the host's
assert all(o["source"] == "real" for o in j["ops"] if o["class"] in ("gemm", "attention_decode")), j["ops"]
PY
"$pdsim" cost --model tiny-llama-512 --gpu host-cpu --decode 64x2 --threads 1 2>"${TMPDIR:-/tmp}/err.$$" &&
  { echo "FAIL: --threads without --cost-model real accepted"; exit 1; }
grep -q "add --cost-model real" "${TMPDIR:-/tmp}/err.$$" || { echo "FAIL: $(cat "${TMPDIR:-/tmp}/err.$$")"; exit 1; }
rm -f "${TMPDIR:-/tmp}/err.$$"
"$pdsim" cost --model tiny-llama-512 --gpu host-cpu --decode 64 --cost-model real --layers some 2>/dev/null &&
  { echo "FAIL: --layers some accepted"; exit 1; }
echo "cost json ok"
