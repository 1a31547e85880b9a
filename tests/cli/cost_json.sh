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
echo "cost json ok"
