# Shared by the CLI tests that source it: `pdsim` and `tmp` must be set first.

fail() { echo "FAIL: $*"; exit 1; }

# expect PATTERN ARGS...: `pdsim ARGS` exits 2 with one stderr line matching PATTERN.
expect() {
  local pattern=$1
  shift
  "$pdsim" "$@" >/dev/null 2>"$tmp/err"
  local rc=$?
  [ "$rc" -eq 2 ] || fail "exit $rc, expected 2, for: $* ($(cat "$tmp/err"))"
  grep -qE -- "$pattern" "$tmp/err" || fail "stderr does not match /$pattern/: $(cat "$tmp/err")"
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "expected one stderr line: $(cat "$tmp/err")"
  echo "ok   $(cat "$tmp/err")"
}
