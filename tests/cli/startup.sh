#!/usr/bin/env bash
# pdsim loads cuBLAS on first use instead of linking it: linked, its
# libcublasLt (540 MB) cost every process ~0.35 s and ~200 MB resident at
# start-up, CPU-only runs and --help included. The binary must not link it,
# and in a CUDA build `pdsim devices` must report that it loads.
set -u
pdsim=$1
fail() { echo "FAIL $*"; exit 1; }
command -v ldd >/dev/null || { echo "SKIP: no ldd"; exit 77; }
if ldd "$pdsim" | grep -q 'libcublas'; then fail "pdsim links cuBLAS: $(ldd "$pdsim" | grep libcublas)"; fi
out=$("$pdsim" devices) || fail "pdsim devices exited $?"
if ldd "$pdsim" | grep -q 'libcudart'; then  # a CUDA build
  grep -q "loaded .*libcublas" <<<"$out" || fail "a CUDA build's devices output does not say cuBLAS loads: $out"
fi
echo "startup ok"
