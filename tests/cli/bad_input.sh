#!/usr/bin/env bash
# Each class of bad input must give exit code 2, one line on stderr naming the
# file and JSON path (or line), and leave no summary.json that looks like success.
set -u
pdsim=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
base=$src/scenarios/quickstart.json

# expect NAME PATTERN -- ARGS...: run pdsim ARGS, check exit 2 and PATTERN (grep -E) on stderr.
expect() {
  local name=$1 pattern=$2
  shift 3
  local out=$tmp/out-$name
  mkdir -p "$out"
  echo '{"stale": true}' >"$out/summary.json"  # a stale result must not survive a failed run
  "$pdsim" "$@" >"$tmp/stdout" 2>"$tmp/stderr"
  local rc=$?
  local err
  err=$(cat "$tmp/stderr")
  local lines
  lines=$(wc -l <"$tmp/stderr")
  if [ "$rc" -ne 2 ]; then
    echo "FAIL $name: exit $rc, expected 2; stderr: $err"; failures=$((failures + 1)); return
  fi
  if ! grep -qE -- "$pattern" "$tmp/stderr"; then
    echo "FAIL $name: stderr does not match /$pattern/: $err"; failures=$((failures + 1)); return
  fi
  if [ "$lines" -ne 1 ]; then
    echo "FAIL $name: expected one line on stderr, got $lines: $err"; failures=$((failures + 1)); return
  fi
  if [ -e "$out/summary.json" ] && [[ "$*" == *"--out $out"* ]]; then
    echo "FAIL $name: $out/summary.json exists after a failed run"; failures=$((failures + 1)); return
  fi
  echo "ok   $name: $err"
}

# Writes the quickstart scenario with one JSON edit applied by sed-free means:
# a tiny substitution on the text is enough for these cases.
variant() {  # variant NAME FROM TO
  sed "s|$2|$3|" "$base" >"$tmp/$1.json"
  if cmp -s "$base" "$tmp/$1.json"; then echo "FAIL setup $1: substitution did not apply"; failures=$((failures + 1)); fi
}

printf '{\n  "name": "x",\n  "seed": 1,,\n}\n' >"$tmp/malformed.json"
expect malformed_json "malformed.json:3:[0-9]+: malformed JSON" -- run "$tmp/malformed.json" --out "$tmp/out-malformed_json"

variant misspelt '"max_batch_tokens"' '"max_batch_tokenz"'
expect misspelt_key 'misspelt.json: \$\.cluster\.prefill\.max_batch_tokenz: unknown key.*did you mean "max_batch_tokens"' -- run "$tmp/misspelt.json" --out "$tmp/out-misspelt_key"

variant wrongtype '"rate_rps": 5.0' '"rate_rps": "five"'
expect wrong_type '\$\.workload\.arrival\.rate_rps: expected a number, got string' -- run "$tmp/wrongtype.json" --out "$tmp/out-wrong_type"

variant negrate '"rate_rps": 5.0' '"rate_rps": -5.0'
expect negative_rate '\$\.workload\.arrival\.rate_rps: must be > 0' -- run "$tmp/negrate.json" --out "$tmp/out-negative_rate"

variant zeroinst '"instances": 1, "tp": 1, "max_batch_size"' '"instances": 0, "tp": 1, "max_batch_size"'
expect zero_instances '\$\.cluster\.decode\.instances: must be in \[1, 100000\], got 0' -- run "$tmp/zeroinst.json" --out "$tmp/out-zero_instances"

variant badtp '"instances": 1, "tp": 1, "max_batch_tokens"' '"instances": 1, "tp": 3, "max_batch_tokens"'
expect tp_divides_heads '\$\.cluster\.prefill\.tp: must divide the model.s 32 attention heads' -- run "$tmp/badtp.json" --out "$tmp/out-tp_divides_heads"

variant toobig '"model": "llama-3.1-8b"' '"model": "llama-3.1-70b"'
expect model_does_not_fit 'toobig.json: \$\.cluster\.prefill: llama-3.1-70b does not fit: .* short by [0-9.]+ GiB' -- run "$tmp/toobig.json" --out "$tmp/out-model_does_not_fit"

variant unknownmodel '"model": "llama-3.1-8b"' '"model": "llama-3.1-8"'
expect unknown_model '\$\.model: unknown model "llama-3.1-8"; did you mean "llama-3.1-8b"' -- run "$tmp/unknownmodel.json" --out "$tmp/out-unknown_model"

variant unknowngpu '"gpu": "h100-sxm", "instances": 1, "tp": 1, "max_batch_size"' '"gpu": "h100-sxn", "instances": 1, "tp": 1, "max_batch_size"'
expect unknown_gpu '\$\.cluster\.decode\.gpu: unknown GPU "h100-sxn".*did you mean "h100-sxm"' -- run "$tmp/unknowngpu.json" --out "$tmp/out-unknown_gpu"

cat >"$tmp/notrace.json" <<'JSON'
{"name": "t", "model": "llama-3.1-8b",
 "workload": {"trace": {"path": "missing.csv", "format": "azure_csv"}},
 "cluster": {"mode": "colocated", "colocated": {"gpu": "h100-sxm"}},
 "slo": {"ttft_s": 1, "tpot_s": 0.1}}
JSON
expect missing_trace 'notrace.json: \$\.workload\.trace\.path: cannot open trace file .*missing.csv' -- run "$tmp/notrace.json" --out "$tmp/out-missing_trace"

printf 'TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.99,12x,109\n' >"$tmp/garbled.csv"
sed 's|missing.csv|garbled.csv|' "$tmp/notrace.json" >"$tmp/garbled.json"
expect garbled_trace 'garbled.csv:3: ContextTokens: expected a whole number' -- run "$tmp/garbled.json" --out "$tmp/out-garbled_trace"

expect missing_scenario 'nope.json: cannot open file' -- run "$tmp/nope.json" --out "$tmp/out-missing_scenario"
expect bad_flag 'pdsim: ' -- run "$base" --no-such-flag
expect bad_override '\$\.cluster\.prefill\.instances: must be in \[1, 100000\], got -2' -- run "$base" --set cluster.prefill.instances=-2 --out "$tmp/out-bad_override"
expect cost_bad_shape 'expected LEN\[\+PREFIX\]\[xCOUNT\]' -- cost --model llama-3.1-8b --gpu h100-sxm --prefill 1024y4
# An output directory that cannot exist (under a regular file) names it, for every command that writes one.
touch "$tmp/a-file"
expect out_under_file "a-file/x: cannot create output directory" -- run "$base" --out "$tmp/a-file/x"
expect validate_out_under_file "a-file/x: cannot create output directory" -- validate "$src/scenarios/tiny-real-cpu.json" \
  --out "$tmp/a-file/x"
expect plan_out_under_file "a-file/x: cannot create output directory" -- plan "$src/plans/opt-13b-distserve.json" --out "$tmp/a-file/x"
expect profile_out_under_file "a-file/x/measured/t: cannot create output directory" -- profile --backend cpu \
  --model tiny-llama-512 --name t --only decode-attention --out "$tmp/a-file/x"
expect compare_out_under_file "a-file/x: cannot create output directory" -- compare-tables \
  --ours "$src/profiles/measured/host-cpu" --theirs "$src/profiles/measured/host-cpu" --out "$tmp/a-file/x/cmp"

if [ "$failures" -ne 0 ]; then echo "$failures bad-input checks failed"; exit 1; fi
echo "all bad-input checks passed"
