#!/usr/bin/env bash
# pdsim compare-tables: a table set against itself gives ratio 1 at every row
# (all "measured"); against a copy with every latency doubled, 2 (and 0.5 the
# other way round), to rounding; shapes the other set lacks are marked
# interpolated or roofline-fallback; a missing directory exits 2 with one line.
set -u
pdsim=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL $*"; exit 1; }
h100="$src/profiles/measured/h100-sxm"

# Rows of ours that are compared: every GEMM (bf16, and fp8 when both sides have it) and attention row.
data_rows() { grep -v '^#' "$1" | tail -n +2 | wc -l; }
want=0
for f in gemm_bf16 gemm_fp8 context_attention_bf16 generation_attention_bf16; do
  want=$((want + $(data_rows "$h100/$f.csv")))
done

# ratio column (12) and theirs_source (13) of every data row must be exactly $2 / "measured".
check_all() {  # csv ratio label
  local n
  n=$(tail -n +2 "$1" | wc -l)
  [ "$n" -eq "$want" ] || fail "$3: $n rows in $1, want $want"
  # Within 1e-12 relative: a run of table points the loader pools (isotonic regression) is their
  # geometric mean, whose exp(log) rounding can move the last bits.
  awk -F, -v r="$2" 'NR > 1 && ($12 - r > 1e-12 * r || r - $12 > 1e-12 * r || $13 != "measured") { print "row " NR ": " $0; bad = 1 } END { exit bad }' \
    "$1" | head -3 | grep . && fail "$3: rows with ratio != $2 or not measured"
  return 0
}

"$pdsim" compare-tables --ours "$h100" --theirs "$h100/" --out "$tmp/self" >"$tmp/self.out" 2>&1 ||
  fail "self: $(cat "$tmp/self.out")"
head -1 "$tmp/self.csv" | grep -qx 'class,m,n,k,batch,length,heads,kv_heads,head_dim,ours_us,theirs_us,ratio,theirs_source' ||
  fail "csv header: $(head -1 "$tmp/self.csv")"
check_all "$tmp/self.csv" 1 self
for c in gemm_bf16 gemm_fp8 context_attention generation_attention; do
  grep -q "^| $c | [0-9]* | 1.000 | 1.000 | 1.000 |" "$tmp/self.md" || fail "self.md has no summary row for $c at 1.000"
done

# A copy with every latency doubled (exact in binary floating point; 17 digits round-trip).
mkdir -p "$tmp/x2/h100-sxm-x2"
for f in "$h100"/*.csv; do
  awk -F, 'BEGIN { OFS = "," } /^#/ || !header { print; if (!/^#/) header = 1; next }
           { $NF = sprintf("%.17g", 2 * $NF); print }' "$f" >"$tmp/x2/h100-sxm-x2/$(basename "$f")"
done
"$pdsim" compare-tables --ours "$tmp/x2/h100-sxm-x2" --theirs "$h100" --out "$tmp/x2ours" >"$tmp/x2.out" 2>&1 ||
  fail "x2 as ours: $(cat "$tmp/x2.out")"
check_all "$tmp/x2ours.csv" 2 "x2 as ours"
"$pdsim" compare-tables --ours "$h100" --theirs "$tmp/x2/h100-sxm-x2" --gpu h100-sxm --out "$tmp/x2theirs" \
  >"$tmp/x2t.out" 2>&1 || fail "x2 as theirs: $(cat "$tmp/x2t.out")"
check_all "$tmp/x2theirs.csv" 0.5 "x2 as theirs"

# Shapes their tables lack (tiny CPU model: head_dim 64, other GEMM lines) are not "measured".
"$pdsim" compare-tables --ours "$src/profiles/measured/host-cpu" --theirs "$h100" --out "$tmp/cpu" \
  >"$tmp/cpu.out" 2>&1 || fail "host-cpu vs h100-sxm: $(cat "$tmp/cpu.out")"
awk -F, 'NR > 1 && $13 != "measured" { n++ } END { exit !(n > 0) }' "$tmp/cpu.csv" ||
  fail "host-cpu vs h100-sxm: every row marked measured"
awk -F, 'NR > 1 && !($12 > 0 && $13 ~ /^(measured|interpolated|roofline-fallback)$/) { bad = 1 } END { exit bad }' \
  "$tmp/cpu.csv" || fail "host-cpu vs h100-sxm: a ratio <= 0 or an unknown source"
grep -q '^| context_attention | ' "$tmp/cpu.md" || fail "cpu.md has no context_attention summary"

# Bad input: exit 2, one line on stderr.
one_line_exit2() {  # label, command...
  local label=$1; shift
  "$@" >/dev/null 2>"$tmp/err"
  local rc=$?
  [ "$rc" -eq 2 ] || fail "$label: exit $rc, want 2 ($(cat "$tmp/err"))"
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "$label: want one line on stderr, got: $(cat "$tmp/err")"
}
one_line_exit2 "missing ours" "$pdsim" compare-tables --ours "$tmp/none" --theirs "$h100" --out "$tmp/e"
one_line_exit2 "missing theirs" "$pdsim" compare-tables --ours "$h100" --theirs "$tmp/none" --gpu h100-sxm --out "$tmp/e"
mkdir -p "$tmp/broken" && cp "$h100"/*.csv "$tmp/broken/" && echo "1,2" >>"$tmp/broken/gemm_bf16.csv"
one_line_exit2 "garbled row" "$pdsim" compare-tables --ours "$tmp/broken" --theirs "$h100" --out "$tmp/e"
one_line_exit2 "no GPU profile for theirs" "$pdsim" compare-tables --ours "$h100" --theirs "$tmp/x2/h100-sxm-x2" --out "$tmp/e"
[ ! -e "$tmp/e.csv" ] || fail "a failed comparison left $tmp/e.csv"
echo ok
