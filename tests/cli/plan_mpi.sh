#!/usr/bin/env bash
# pdsim plan under mpirun -n 2 (oversubscribed is fine) writes byte-identical
# outputs to one process, for a target-rate and a goodput-per-$ plan.
# Registered only when CMake found MPI (tests/CMakeLists.txt).
set -u
pdsim=$1
src=$2
mpirun=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

# The plan both plan tests use (tests/cli/fixtures/quickstart-plan.json; @SRC@ = this checkout).
sed "s#@SRC@#$src#" "$src/tests/cli/fixtures/quickstart-plan.json" >"$tmp/plan.json"
sed 's/"target_rps": 60,/"objective": "goodput_per_usd",/' "$tmp/plan.json" >"$tmp/plan_max.json"
outputs="plan.json candidates.csv finalists.csv phases.csv sweep.csv pareto.csv cost_vs_ratio.csv best_scenario.json finalist_2.json plots.gp"
for p in plan plan_max; do
  "$pdsim" plan "$tmp/$p.json" --out "$tmp/${p}_one" --jobs 2 --quiet --no-plots || fail "$p: one process exited $?"
  "$mpirun" --oversubscribe -n 2 "$pdsim" plan "$tmp/$p.json" --out "$tmp/${p}_mpi" --jobs 1 --no-plots \
    >"$tmp/${p}_mpi.out" 2>&1 || fail "$p: mpirun -n 2 exited $?: $(tail -5 "$tmp/${p}_mpi.out")"
  grep -q 'x 2 processes' "$tmp/${p}_mpi.out" || fail "$p: not spread over 2 processes: $(head -3 "$tmp/${p}_mpi.out")"
  for f in $outputs; do
    cmp -s "$tmp/${p}_one/$f" "$tmp/${p}_mpi/$f" || fail "$p: $f differs between 1 process and mpirun -n 2"
  done
  echo "ok   $p: $outputs identical for 1 process and mpirun -n 2"
done
echo "plan mpi ok"
