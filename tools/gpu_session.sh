#!/usr/bin/env bash
# Run ON a lent GPU machine (issue 4's GPU work in one call). Here, first:
#   bash tools/gpu_kit.sh                       # .gpukit/: the .debs the device image lacks
# then the device tool's run with carry [".gpukit"] and the command
#   bash tools/gpu_session.sh
#
# Steps, in order, each under `timeout`, logged with tee into one log and
# timed; a failing step does not stop the others, and every step's exit status
# lands in the summary:
#   kit         unpack .gpukit/*.deb with dpkg -x into a private prefix (never /)
#   configure   CMake (Ninja if present), Release, CUDA on, CUDA archs of the device (90 on H100/H200),
#               CMAKE_PREFIX_PATH = the kit prefix
#   build       pdsim, pdsim_tests, pdsim_kernel_bench (what the GPU steps run), all cores
#   smi         nvidia-smi
#   tests       the kernel tests over every backend, CUDA included (pdsim_tests -tc='*kernels*')
#   fallback    only when those failed: runs each kernel variant's own tests (prefill attention:
#               wgmma, then tensor-core mma, then simt; decode attention: on 9.x tensor-core mma, then
#               regs, then smem), picks the
#               first variant of each that passes (elementwise: the 16-byte kernels, then the scalar
#               ones), re-runs the kernel tests with that choice, and writes it as
#               PDSIM_ATTENTION_KERNEL / PDSIM_DECODE_KERNEL / PDSIM_ELEMENTWISE_KERNEL into $BUILD_DIR/kernel-choice.env,
#               which the profile, validate and ctest steps then use (the device string in the
#               tables and results names the forced choice). memcheck and racecheck keep the defaults.
#               The opt-in decode experiments (regs-scatter; mma off 9.x) are never defaults: a failing
#               experiment's own test is reported and excluded, and if only experiments failed
#               the defaults stand (no kernel-choice.env).
#   bench       the kernel benchmarks (pdsim_kernel_bench), JSON into results/kernel-bench-<gpu>.json
#   profile8b   pdsim profile --backend cuda, llama-3.1-8b tp 1, into profiles/ as <gpu>-pdsim
#   profile70b  the same for llama-3.1-70b (merged into the same tables)
#   compare     pdsim compare-tables: <gpu>-pdsim vs the vLLM tables of the same GPU
#               (profiles/measured/<gpu>; an H200 is compared with h100-sxm, the only Hopper tables)
#               -> results/kernels-vs-vllm-<gpu>.{md,csv}
#   split_ab    the decode attention table of both models again (pdsim profile --only decode-attention)
#               with PDSIM_DECODE_MIN_SPLIT=64 (decode splits down to 64 tokens instead of 256) into
#               $BUILD_DIR/split64, compared with the default's table (ratio < 1: 64 is faster)
#               -> results/decode-min-split64-<gpu>.{md,csv}, and the table itself as
#               results/decode-min-split64-<gpu>-table.csv
#   kernel_ab   the same with the other decode kernel: on compute capability 9.x, where auto runs the
#               tensor-core kernel, PDSIM_DECODE_KERNEL=regs (the register kernel, the default until
#               2026-12-04) -> results/decode-regs-<gpu>.{md,csv,-table.csv}; elsewhere, where auto runs the
#               register kernel, PDSIM_DECODE_KERNEL=mma -> results/decode-mma-<gpu>.*
#   waves_ab    the same with PDSIM_DECODE_SPLIT_WAVES=0 (the split plan without its fit to the pass-1
#               kernel's waves) -> results/decode-split-nowaves-<gpu>.{md,csv,-table.csv}, then
#               BM_DecodeAttention without and with the fit, one after the other, appended to the .md
#   validate    pdsim validate scenarios/llama8b-real-gpu.json on the profiled device
#               -> results/validation-<gpu>.{md,json}
#   memcheck    compute-sanitizer memcheck on the kernel tests (after the measurements, which
#               matter more if time runs short; the tests step already checked the results)
#   racecheck   compute-sanitizer racecheck on the attention kernel tests
#   timings     only when --steps names it: pdsim run of that scenario with --timings: every batch shape's
#               measured op times, gzipped into $OUT/timings-<gpu>.csv.gz (not committed: for finding the
#               decode steps behind a TBT tail)
#   validate_all  the same scenario, reduced (50 requests, the faster of 2 timed runs per batch), with
#               real_kernel.layers=all: every layer runs on its own weights and KV cache, to see
#               what the one-layer-x-L approximation of the default run misses (with 1 timed run, as
#               until 2026-12-04, each prefill batch's single run on a GPU idle between prefills read
#               ~10% slower at the median than the minimum of 10 runs of the same shape, and TTFT
#               missed by 13%; with the faster of 2 the H200 met it, -0.1% / +1.5%)
#               -> results/validation-<gpu>-all-layers.{md,json}
#   targets     tools/gpu_targets.py: issue 4's GPU targets read off the benchmark JSON and the
#               validations (met / missed / skipped per kernel variant) -> results/targets-<gpu>.md,
#               printed again at the end of the output
#   ctest       the other targets, then the whole test suite (whatever time is left)
#   pack        $OUT/gpu-results.tar.gz (paths relative to the repository root: profiles/measured/<gpu>-pdsim/,
#               profiles/gpus/<gpu>-pdsim.json, results/...), $OUT/gpu-session.log, $OUT/summary.txt
# <gpu> comes from nvidia-smi's device name: h100-sxm (NVIDIA H100 80GB HBM3), h200, ...
# The whole script ends within --budget seconds (default 570; the run limit is 600): each step's
# limit is its own budget or what is left, whichever is smaller, and a step
# with too little time left is skipped (and says so in the summary). Exit 0
# only when every selected step ran and passed (or lacked its input and said so).
#
# Options:
#   --dry-run                  print the steps and their limits, run nothing
#   --steps a,b,...            run only these of the steps after build (kit, configure, build always run;
#                              --steps none: only those three)
#   --skip a,b,...             skip these steps
#   --no-gpu                   skip the steps that need a GPU (to test the kit and configure on a machine without one)
#   --no-build                 configure only (with --no-gpu: checks the kit without a long build)
#   --ignore-system-packages   configure with CMAKE_IGNORE_PREFIX_PATH=/usr, so only the kit can satisfy
#                              find_package (to prove the kit suffices on a machine that has the packages)
#   --budget SECONDS           whole-script limit (default 570)
#   --out DIR                  where the log, summary and tarball go (default $OUT, else out/gpu-session)
#   --build-dir DIR            (default build-gpu)
#   --name NAME                device profile name (default <gpu>-pdsim)
#   --theirs NAME              table set to compare with (default: profiles/measured/<gpu>, else h100-sxm)
# Environment: LIMIT_<step> (that step's budget in seconds, e.g. LIMIT_build=900), PROFILE_ARGS
# (pdsim profile options; default "--full --passes 1", e.g. "--full --iters 5"), VALIDATE_ARGS (the validate step's extra pdsim validate
# options; default "--repeat 3": three real runs, 82 s on an H100, so the errors come with their spread), CUDA_ARCHS (default: the device's, e.g. "90").
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
SELF="$ROOT/tools/gpu_session.sh"
BUDGET=570
OUTDIR=${OUT:-$ROOT/out/gpu-session}
BUILD_DIR=$ROOT/build-gpu
KIT=$ROOT/.gpukit
PREFIX=${TMPDIR:-/tmp}/pdsim-gpukit
DRY=0 NO_GPU=0 NO_BUILD=0 IGNORE_SYS=0 STEPS="" SKIP="" NAME="" THEIRS_OPT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --no-gpu) NO_GPU=1 ;;
    --no-build) NO_BUILD=1 ;;
    --ignore-system-packages) IGNORE_SYS=1 ;;
    --steps) STEPS=",$2,"; shift ;;
    --skip) SKIP=",$2,"; shift ;;
    --budget) BUDGET=$2; shift ;;
    --out) OUTDIR=$2; shift ;;
    --build-dir) BUILD_DIR=$2; shift ;;
    --name) NAME=$2; shift ;;
    --theirs) THEIRS_OPT=$2; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_session: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
case "$OUTDIR" in /*) ;; *) OUTDIR=$ROOT/$OUTDIR ;; esac
START=$(date +%s)
DEADLINE=$((START + BUDGET))
PACK_RESERVE=20
JOBS=$(nproc 2>/dev/null || echo 4)

# ---------------------------------------------------------------- the device
GPU_NAME="" COMPUTE_CAP=""
if [ "$NO_GPU" -eq 0 ] && command -v nvidia-smi >/dev/null; then
  GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
  COMPUTE_CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
fi
lower=$(echo "$GPU_NAME" | tr '[:upper:]' '[:lower:]')
case "$lower" in
  *h200*) BASE=h200 ;;
  *h100*pcie*) BASE=h100-pcie ;;
  *h100*nvl*) BASE=h100-nvl ;;
  *h100*) BASE=h100-sxm ;;            # "NVIDIA H100 80GB HBM3": the SXM part
  *a100*80gb*) BASE=a100-sxm-80g ;;
  *l40s*) BASE=l40s ;;
  *l40*) BASE=l40 ;;
  "") BASE=no-gpu ;;
  *) BASE=$(echo "$lower" | sed 's/^nvidia //; s/[^a-z0-9][^a-z0-9]*/-/g; s/^-//; s/-$//') ;;
esac
OURS=${NAME:-$BASE-pdsim}
if [ -n "$THEIRS_OPT" ]; then THEIRS=$THEIRS_OPT
elif [ -f "profiles/measured/$BASE/gemm_bf16.csv" ]; then THEIRS=$BASE
else THEIRS=h100-sxm; fi
CUDA_ARCHS=${CUDA_ARCHS:-${COMPUTE_CAP:-90}}
# The decode kernel auto runs (kernels/cuda/attention.cu): the tensor-core one on 9.x, else the register one;
# kernel_ab measures the other.
case "$COMPUTE_CAP" in 9*) DECODE_DEFAULT=mma DECODE_OTHER=regs ;; *) DECODE_DEFAULT=regs DECODE_OTHER=mma ;; esac
PDSIM=$BUILD_DIR/tools/pdsim
TESTS=$BUILD_DIR/tests/pdsim_tests
BENCH=$BUILD_DIR/kernels/bench/pdsim_kernel_bench
SANITIZER=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
KERNEL_CHOICE=$BUILD_DIR/kernel-choice.env  # written by the fallback step, read by the steps after it
export ROOT OUTDIR BUILD_DIR KIT PREFIX KERNEL_CHOICE NO_GPU IGNORE_SYS JOBS BASE OURS THEIRS CUDA_ARCHS PDSIM TESTS BENCH SANITIZER \
  DECODE_DEFAULT DECODE_OTHER
# --full: the larger grid (m to 8192, prompts to 4096, contexts to 8192); cheap on a GPU, and the
# validate scenario's prompts (lognormal, mean 1024) reach past the default grid. --passes 1: a
# lent GPU is the session's alone (the second pass is for a shared VM's slow spells) and its
# minutes are few.
export PROFILE_ARGS=${PROFILE_ARGS---full --passes 1} VALIDATE_ARGS=${VALIDATE_ARGS---repeat 3}

# ---------------------------------------------------------------- steps
# Each step runs in `bash -c` under timeout; exit 77 = skipped (its reason printed).
need() { for f in "$@"; do [ -e "$f" ] || { echo "skipped: $f does not exist (an earlier step failed?)"; exit 77; }; done; }

step_kit() {
  ls "$KIT"/*.deb >/dev/null 2>&1 || {
    echo "no .deb files in $KIT (run tools/gpu_kit.sh before the device call and carry .gpukit): configuring with the system's packages"
    exit 77
  }
  rm -rf "$PREFIX" && mkdir -p "$PREFIX" || exit 1
  for d in "$KIT"/*.deb; do
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$d" "$PREFIX" || exit 1
    else  # no dpkg: a .deb is an ar archive holding data.tar.*
      member=$(ar t "$d" | grep '^data\.tar') || exit 1
      case "$member" in *.xz) z=-J ;; *.zst) z=--zstd ;; *.gz) z=-z ;; *) z= ;; esac
      ar p "$d" "$member" | tar -x $z -f - -C "$PREFIX" || exit 1
    fi
    echo "unpacked $(basename "$d")"
  done
  [ -f "$KIT/MANIFEST" ] && cat "$KIT/MANIFEST"
  du -sh "$PREFIX"
}

step_configure() {
  local args=(-S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DPDSIM_WITH_CUDA=ON
              "-DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCHS")
  [ -d "$PREFIX/usr" ] && args+=("-DCMAKE_PREFIX_PATH=$PREFIX/usr")
  if [ ! -f "$BUILD_DIR/CMakeCache.txt" ] && command -v ninja >/dev/null; then args+=(-G Ninja); fi
  local major
  major=$(cmake --version | head -1 | sed 's/[^0-9]*\([0-9]*\).*/\1/')
  [ "${major:-3}" -ge 4 ] && args+=(-DCMAKE_POLICY_VERSION_MINIMUM=3.5)  # old cmake_policy lines in package configs
  if [ "$IGNORE_SYS" -eq 1 ]; then
    # Only the kit may satisfy find_package; the tools are named explicitly since /usr/bin is ignored too.
    args+=(-DCMAKE_IGNORE_PREFIX_PATH=/usr "-DCMAKE_CXX_COMPILER=$(command -v c++ || command -v g++)")
    command -v ninja >/dev/null && args+=("-DCMAKE_MAKE_PROGRAM=$(command -v ninja)")
  fi
  cmake --version | head -1
  echo "cmake ${args[*]}"
  cmake "${args[@]}" 2>&1 | tee "$PREFIX.configure.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
  echo "--- packages found (must be under $PREFIX when the kit is used):"
  grep -E '^(nlohmann_json|CLI11|Eigen3|doctest|benchmark)_DIR:' "$BUILD_DIR/CMakeCache.txt"
  if [ -d "$PREFIX/usr" ]; then
    local outside
    outside=$(grep -E '^(nlohmann_json|CLI11|Eigen3|doctest|benchmark)_DIR:' "$BUILD_DIR/CMakeCache.txt" | grep -v "=$PREFIX/")
    [ -z "$outside" ] || echo "note: found outside the kit: $outside"
  fi
  if [ "$NO_GPU" -eq 0 ] && ! grep -q 'pdsim: CUDA .* found, building CUDA kernels' "$PREFIX.configure.log"; then
    echo "nvcc was not found: this build would be CPU-only"; exit 1
  fi
}

# Only what the GPU steps run; the ctest step builds the rest if time is left.
step_build() {
  need "$BUILD_DIR/CMakeCache.txt"
  cmake --build "$BUILD_DIR" -j "$JOBS" --target pdsim pdsim_tests pdsim_kernel_bench || exit 1
}

step_smi() {
  nvidia-smi || exit 1
  nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version,clocks.max.sm,clocks.max.mem,power.limit --format=csv
  echo "device profile name: $OURS; compared with: profiles/measured/$THEIRS; CUDA archs built: $CUDA_ARCHS"
  # The wgmma kernel's tensor-core instructions as built (28 wgmma in its PTX; HGMMA in SASS).
  local obj
  obj=$(find "$BUILD_DIR" -name 'prefill_attention_sm90.cu.o' | head -1)
  if [ -n "$obj" ] && command -v cuobjdump >/dev/null; then
    echo "HGMMA instructions in $(basename "$obj"): $(cuobjdump --dump-sass "$obj" | grep -c HGMMA)"
  fi
}

step_tests() {
  need "$TESTS" "$PDSIM"
  rm -f "$KERNEL_CHOICE" "$BUILD_DIR/tests.rc"
  "$PDSIM" devices | tee /dev/stderr | grep -q GiB || { echo "pdsim sees no CUDA device: the CUDA tests would only skip"; exit 1; }
  "$TESTS" -tc='*kernels*' --duration=true
  local rc=$?
  echo "$rc" >"$BUILD_DIR/tests.rc"
  exit "$rc"
}

# The elementwise kernels' tests over every backend (rmsnorm: plain and with
# the residual add fused in; the CUDA backend runs the 16-byte kernels at most
# of their shapes unless PDSIM_ELEMENTWISE_KERNEL=scalar).
export ELEMENTWISE_TESTS='kernels: rmsnorm*,kernels: silu gate*,kernels: kv append*'

# Kernel variants, fastest first: name|the test that checks it alone against
# the reference|the tests that need it (excluded once it is dropped). The last
# of each list is the plain fallback.
# (Arrays are not exported: each step runs in its own bash -c.)
step_fallback() {
  local ATTENTION_VARIANTS=("wgmma|*wgmma prefill attention over ragged*|*wgmma*"
                            "mma|*tensor-core prefill attention over ragged*|*tensor-core prefill*,*tensor-core and CUDA-core*,*wgmma and mma*"
                            "simt||")
  # Decode: on 9.x the tensor-core kernel first (auto's choice there; the test of auto's choice needs it).
  local DECODE_VARIANTS=()
  [ "$DECODE_DEFAULT" = mma ] &&
    DECODE_VARIANTS+=("mma|*tensor-core decode kernel agrees*|*tensor-core decode kernel agrees*,*auto runs the tensor-core*")
  DECODE_VARIANTS+=("regs|*register and shared-memory decode*|*register and shared-memory decode*,*decode kernel switch*,*auto runs the tensor-core*"
                    "smem||")
  # Opt-in decode kernels (never a default here): name|their own test.
  local EXPERIMENTS=("regs-scatter|*scattered-score register decode*")
  [ "$DECODE_DEFAULT" = mma ] || EXPERIMENTS+=("mma|*tensor-core decode kernel agrees*")
  need "$TESTS" "$BUILD_DIR/tests.rc"
  if [ "$(cat "$BUILD_DIR/tests.rc")" = 0 ]; then echo "the kernel tests passed with the default kernels: no fallback"; exit 0; fi
  local excluded="" env_lines="" attention="" decode="" v name own needs
  for v in "${EXPERIMENTS[@]}"; do
    IFS='|' read -r name own <<<"$v"
    "$TESTS" -tc="$own" >/dev/null 2>&1 && continue
    echo "decode experiment $name fails its test ($own): excluded (it is never a default)"
    excluded="$excluded,$own"
  done
  for v in "${ATTENTION_VARIANTS[@]}"; do
    IFS='|' read -r name own needs <<<"$v"
    if [ -z "$own" ] || PDSIM_ATTENTION_KERNEL=$name "$TESTS" -tc="$own" >/dev/null 2>&1; then attention=$name; break; fi
    echo "prefill attention: the $name kernel fails its tests ($own)"
    excluded="$excluded,$needs"
  done
  for v in "${DECODE_VARIANTS[@]}"; do
    IFS='|' read -r name own needs <<<"$v"
    if [ -z "$own" ] || PDSIM_DECODE_KERNEL=$name "$TESTS" -tc="$own" >/dev/null 2>&1; then decode=$name; break; fi
    echo "decode attention: the $name kernel fails its tests ($own)"
    excluded="$excluded,$needs"
  done
  # Elementwise: the 16-byte kernels (auto), else the scalar ones.
  local elementwise=auto own_ew="$ELEMENTWISE_TESTS"
  if ! "$TESTS" -tc="$own_ew" >/dev/null 2>&1; then
    if PDSIM_ELEMENTWISE_KERNEL=scalar "$TESTS" -tc="$own_ew" >/dev/null 2>&1; then
      echo "elementwise: the 16-byte kernels fail their tests ($own_ew); the scalar ones pass"
      elementwise=scalar
    else
      echo "elementwise: the 16-byte and the scalar kernels fail their tests ($own_ew)"
      excluded="$excluded,$own_ew"
    fi
  fi
  if [ "$attention" = wgmma ] && [ "$decode" = "$DECODE_DEFAULT" ] && [ "$elementwise" = auto ]; then
    "$TESTS" -tc='*kernels*' -tce="${excluded#,}" || {
      echo "the kernel tests fail with the default kernels, experiments aside: the failure is elsewhere (see the tests step)"; exit 1; }
    echo "only experiments failed (${excluded#,}); the default kernels pass: no fallback"
    exit 0
  fi
  [ "$attention" = wgmma ] || env_lines="export PDSIM_ATTENTION_KERNEL=$attention"$'\n'
  [ "$decode" = "$DECODE_DEFAULT" ] || env_lines="${env_lines}export PDSIM_DECODE_KERNEL=$decode"$'\n'
  [ "$elementwise" = auto ] || env_lines="${env_lines}export PDSIM_ELEMENTWISE_KERNEL=$elementwise"$'\n'
  echo "chosen: prefill attention $attention, decode attention $decode, elementwise $elementwise; re-running the kernel tests without ${excluded#,}"
  local exclude=()
  [ -n "$excluded" ] && exclude=(-tce="${excluded#,}")
  (eval "$env_lines"; "$TESTS" -tc='*kernels*' "${exclude[@]}") || {
    echo "the kernel tests still fail with the fallback kernels: the failure is elsewhere (see the tests step)"; exit 1; }
  printf '%s' "$env_lines" >"$KERNEL_CHOICE"
  echo "wrote $KERNEL_CHOICE:"; cat "$KERNEL_CHOICE"
  exit 3  # the defaults failed: this step reads FAILED so the summary says so, while later steps use the choice
}

step_memcheck() {
  need "$TESTS" "$SANITIZER"
  "$SANITIZER" --tool memcheck --error-exitcode 3 --print-limit 30 "$TESTS" -tc='*kernels*'
}

step_racecheck() {
  need "$TESTS" "$SANITIZER"
  "$SANITIZER" --tool racecheck --error-exitcode 3 --print-limit 30 "$TESTS" -tc='*kernels*attention*'
}

step_bench() {
  need "$BENCH"
  mkdir -p "$ROOT/results"
  "$BENCH" --benchmark_min_time=0.05 --benchmark_counters_tabular=true \
    --benchmark_out="$ROOT/results/kernel-bench-$BASE.json" --benchmark_out_format=json
}

# --out relative to the repository root (the working directory): the provenance the
# tables and device profile record is then the same path on every machine.
# pdsim profile of one model into $OURS. Tables already there from another
# configuration (e.g. the committed ones, measured with the default kernels,
# when the fallback forced others: the device string differs) make profile
# refuse before measuring; they are moved aside into $BUILD_DIR (this machine's
# copy only) and the model profiled afresh, so the session still measures.
profile_model() {
  need "$PDSIM"
  local err="$BUILD_DIR/profile-$1.err" rc
  # shellcheck disable=SC2206  # PROFILE_ARGS is a list of options
  local cmd=("$PDSIM" profile --backend cuda --model "$1" --tp 1 --name "$OURS" --out profiles $PROFILE_ARGS)
  "${cmd[@]}" 2>"$err"
  rc=$?
  cat "$err" >&2
  if [ "$rc" -eq 2 ] && grep -q "another device or configuration" "$err"; then
    local aside="$BUILD_DIR/replaced-$OURS-$(date +%s)"
    mkdir -p "$aside"
    mv "profiles/measured/$OURS" "$aside/measured" && { mv "profiles/gpus/$OURS.json" "$aside/" 2>/dev/null || true; }
    echo "profiles/measured/$OURS holds another configuration's tables: moved to $aside; profiling $1 afresh"
    "${cmd[@]}"
    rc=$?
  fi
  return "$rc"
}

step_profile8b() { profile_model llama-3.1-8b; }
step_profile70b() { profile_model llama-3.1-70b; }

step_compare() {
  need "$PDSIM" "$ROOT/profiles/measured/$OURS/gemm_bf16.csv" "$ROOT/profiles/measured/$THEIRS/gemm_bf16.csv"
  [ "$THEIRS" = "$BASE" ] || echo "note: no tables of $BASE from vLLM: comparing with $THEIRS (another GPU)"
  "$PDSIM" compare-tables --ours "profiles/measured/$OURS" --theirs "profiles/measured/$THEIRS" \
    --out "results/kernels-vs-vllm-$BASE"
}

# A/B of one decode setting (an environment assignment): both models' decode
# attention tables measured with it, against the default's tables in
# profiles/measured/$OURS. compare-tables reads whole table sets, so the
# default's GEMM, prefill and all-reduce tables stand in for the rest (their
# rows compare 1.000; the results file says so).
decode_ab() {  # tag, VAR=value, results name
  local tag=$1 assign=$2 out=$3 m f
  local dir=$BUILD_DIR/$tag
  need "$PDSIM" "$ROOT/profiles/measured/$OURS/generation_attention_bf16.csv"
  rm -rf "$dir"
  for m in llama-3.1-8b llama-3.1-70b; do
    # shellcheck disable=SC2086  # PROFILE_ARGS is a list of options
    env "$assign" "$PDSIM" profile --backend cuda --model "$m" --tp 1 --name "$OURS-$tag" --out "$dir" \
      --only decode-attention $PROFILE_ARGS || exit
  done
  for f in gemm_bf16 context_attention_bf16 allreduce; do
    cp "$ROOT/profiles/measured/$OURS/$f.csv" "$dir/measured/$OURS-$tag/" || exit
  done
  "$PDSIM" compare-tables --ours "$dir/measured/$OURS-$tag" --theirs "profiles/measured/$OURS" \
    --out "results/$out-$BASE" || exit
  printf '\nOnly generation_attention was measured with %s (pdsim profile --only decode-attention); the GEMM, prefill and all-reduce rows are the default tables copied in, so they compare 1.000.\n' \
    "$assign" >>"results/$out-$BASE.md"
  # The measured table itself (profiled-model format, provenance lines included):
  # if the setting wins, it can replace the default's decode table without a GPU.
  cp "$dir/measured/$OURS-$tag/generation_attention_bf16.csv" "results/$out-$BASE-table.csv"
}
step_split_ab() { decode_ab split64 PDSIM_DECODE_MIN_SPLIT=64 decode-min-split64; }
# The decode split plan without its fit to the kernel's waves (PDSIM_DECODE_SPLIT_WAVES=0, as before
# 2026-12-04): both decode tables (ratio > 1: the fit is faster), then BM_DecodeAttention (256k tokens per
# batch, every decode kernel) without and with it, in turn in this one call, appended row by row.
step_waves_ab() {
  decode_ab nowaves PDSIM_DECODE_SPLIT_WAVES=0 decode-split-nowaves || exit
  need "$BENCH"
  local off="$BUILD_DIR/bench-nowaves.json" on="$BUILD_DIR/bench-waves.json"
  PDSIM_DECODE_SPLIT_WAVES=0 "$BENCH" --benchmark_filter=BM_DecodeAttention --benchmark_min_time=0.05 \
    --benchmark_out="$off" --benchmark_out_format=json >/dev/null || exit
  "$BENCH" --benchmark_filter=BM_DecodeAttention --benchmark_min_time=0.05 \
    --benchmark_out="$on" --benchmark_out_format=json >/dev/null || exit
  python3 - "$off" "$on" >>"results/decode-split-nowaves-$BASE.md" <<'PY' || exit
import json, sys
rows = [{b["name"]: b for b in json.load(open(f))["benchmarks"] if "bw_frac" in b} for f in sys.argv[1:]]
print("\n## BM_DecodeAttention (256k tokens per batch), the same call: without the wave fit, then with it\n")
print("| benchmark | bw_frac without | bw_frac with | time without / with |")
print("|---|---|---|---|")
for name, off in rows[0].items():
    on = rows[1].get(name)
    if on:
        print(f"| {name} | {off['bw_frac']:.3f} | {on['bw_frac']:.3f} | {off['real_time'] / on['real_time']:.3f} |")
PY
  tail -n 30 "results/decode-split-nowaves-$BASE.md"
}
step_kernel_ab() { decode_ab "$DECODE_OTHER" "PDSIM_DECODE_KERNEL=$DECODE_OTHER" "decode-$DECODE_OTHER"; }

# The --set options that put both pools of the GPU scenario on the profiled
# device (none when its profile is missing: the scenario's datasheet h100-sxm).
pool_sets() {
  [ -f "$ROOT/profiles/gpus/$OURS.json" ] && echo "--set cluster.prefill.gpu=$OURS --set cluster.decode.gpu=$OURS"
}

step_validate() {
  need "$PDSIM"
  local set
  read -r -a set <<<"$(pool_sets)"
  [ "${#set[@]}" -gt 0 ] ||
    echo "note: no profiles/gpus/$OURS.json (profile failed?): validating on the datasheet h100-sxm profile and vLLM tables"
  rm -rf "$BUILD_DIR/validate"
  # shellcheck disable=SC2086  # VALIDATE_ARGS is a list of options
  "$PDSIM" validate scenarios/llama8b-real-gpu.json --out "$BUILD_DIR/validate" "${set[@]}" $VALIDATE_ARGS || exit
  cp "$BUILD_DIR/validate/validation.md" "$ROOT/results/validation-$BASE.md" &&
    cp "$BUILD_DIR/validate/validation.json" "$ROOT/results/validation-$BASE.json"
}

step_validate_all() {
  need "$PDSIM"
  local set
  read -r -a set <<<"$(pool_sets)"
  rm -rf "$BUILD_DIR/validate-all"
  "$PDSIM" validate scenarios/llama8b-real-gpu.json --out "$BUILD_DIR/validate-all" "${set[@]}" \
    --set real_kernel.layers=all --set real_kernel.iters=2 --set workload.num_requests=50 || exit
  cp "$BUILD_DIR/validate-all/validation.md" "$ROOT/results/validation-$BASE-all-layers.md" &&
    cp "$BUILD_DIR/validate-all/validation.json" "$ROOT/results/validation-$BASE-all-layers.json"
}

step_timings() {
  need "$PDSIM"
  local set
  read -r -a set <<<"$(pool_sets)"
  rm -rf "$BUILD_DIR/timings-run" "$BUILD_DIR/timings-$BASE.csv"
  "$PDSIM" run scenarios/llama8b-real-gpu.json --out "$BUILD_DIR/timings-run" "${set[@]}" \
    --timings "$BUILD_DIR/timings-$BASE.csv" || exit
  gzip -c "$BUILD_DIR/timings-$BASE.csv" >"$OUTDIR/timings-$BASE.csv.gz" || exit
  echo "every batch shape's measured op times: timings-$BASE.csv.gz among the returned files (not committed)"
}

step_targets() {
  # Paths relative to the repository root (the working directory): the report names its inputs as committed.
  need "results/kernel-bench-$BASE.json"
  local v=()
  for f in "results/validation-$BASE.json" "results/validation-$BASE-all-layers.json"; do
    [ -f "$f" ] && v+=(--validation "$f")
  done
  python3 tools/gpu_targets.py --bench "results/kernel-bench-$BASE.json" "${v[@]}" --out "results/targets-$BASE.md"
}

step_ctest() {
  need "$BUILD_DIR/CTestTestfile.cmake"
  cmake --build "$BUILD_DIR" -j "$JOBS" || exit 1
  (cd "$BUILD_DIR" && ctest -j "$JOBS" --output-on-failure --timeout 200)
}

export -f need pool_sets profile_model step_kit step_configure step_build step_smi step_tests step_fallback step_memcheck step_racecheck step_bench \
  step_profile8b step_profile70b step_compare decode_ab step_split_ab step_waves_ab step_kernel_ab step_validate step_timings step_validate_all step_targets step_ctest

# name  budget_s  min_s  gpu  what
PLAN=(
  "kit 30 5 0 unpack .gpukit/*.deb with dpkg -x into $PREFIX"
  "configure 90 10 0 cmake -S . -B ${BUILD_DIR#"$ROOT"/} (Ninja if present) Release, CUDA archs $CUDA_ARCHS, CMAKE_PREFIX_PATH=$PREFIX/usr"
  "build 240 30 0 cmake --build ${BUILD_DIR#"$ROOT"/} -j $JOBS --target pdsim pdsim_tests pdsim_kernel_bench"
  "smi 15 3 1 nvidia-smi"
  "tests 90 10 1 pdsim_tests -tc='*kernels*' (every kernel over CPU and CUDA backends)"
  "fallback 60 10 1 only when the kernel tests failed: the first passing variant of each attention kernel and of the elementwise kernels -> ${KERNEL_CHOICE#"$ROOT"/}"
  "bench 90 10 1 pdsim_kernel_bench --benchmark_out=results/kernel-bench-$BASE.json"
  "profile8b 90 30 1 pdsim profile --backend cuda --model llama-3.1-8b --tp 1 --name $OURS --out profiles"
  "profile70b 150 40 1 pdsim profile --backend cuda --model llama-3.1-70b --tp 1 --name $OURS --out profiles"
  "compare 20 3 0 pdsim compare-tables --ours profiles/measured/$OURS --theirs profiles/measured/$THEIRS --out results/kernels-vs-vllm-$BASE"
  "split_ab 40 10 1 both decode attention tables again with PDSIM_DECODE_MIN_SPLIT=64, compared with the default's -> results/decode-min-split64-$BASE.{md,csv}"
  "kernel_ab 40 10 1 both decode attention tables again with PDSIM_DECODE_KERNEL=$DECODE_OTHER (auto runs $DECODE_DEFAULT), compared with the default's -> results/decode-$DECODE_OTHER-$BASE.{md,csv}"
  "waves_ab 60 20 1 both decode attention tables and BM_DecodeAttention again with PDSIM_DECODE_SPLIT_WAVES=0 (the split plan without its fit to the kernel's waves) -> results/decode-split-nowaves-$BASE.{md,csv}"
  "validate 150 30 1 pdsim validate scenarios/llama8b-real-gpu.json (pools on $OURS) -> results/validation-$BASE.{md,json}"
  "memcheck 90 15 1 compute-sanitizer --tool memcheck pdsim_tests -tc='*kernels*'"
  "racecheck 60 15 1 compute-sanitizer --tool racecheck pdsim_tests -tc='*kernels*attention*'"
  "timings 60 35 1 (only with --steps timings) pdsim run scenarios/llama8b-real-gpu.json --timings: every batch shape's op times -> \$OUT/timings-$BASE.csv.gz"
  "validate_all 100 40 1 pdsim validate scenarios/llama8b-real-gpu.json, 50 requests, real_kernel.layers=all iters=2 -> results/validation-$BASE-all-layers.{md,json}"
  "targets 15 2 0 python3 tools/gpu_targets.py --bench results/kernel-bench-$BASE.json --validation ... -> results/targets-$BASE.md"
  "ctest 200 90 1 build the other targets, then ctest -j $JOBS (the whole suite, with what time is left)"
)

selected() {  # step name -> 0 when it should run
  local s=$1
  case "$SKIP" in *",$s,"*) return 1 ;; esac
  case "$s" in kit|configure) return 0 ;; build) [ "$NO_BUILD" -eq 0 ]; return ;; esac
  case "$STEPS" in *",$s,"*) return 0 ;; esac
  # Opt-in: the op-timings file was for finding what made the H100's TBT tail;
  # on the H200 (2026-12-04) no decode batch ran over 1.5x every model's price.
  case "$s" in timings) return 1 ;; esac
  [ -z "$STEPS" ]
}

if [ "$DRY" -eq 1 ]; then
  echo "gpu_session (dry run): device \"${GPU_NAME:-none}\" -> tables profiles/measured/$OURS, results *-$BASE; budget ${BUDGET}s"
  for entry in "${PLAN[@]}"; do
    read -r name budget min gpu what <<<"$entry"
    if ! selected "$name"; then state="not selected"
    elif [ "$gpu" -eq 1 ] && [ "$NO_GPU" -eq 1 ]; then state="skipped: --no-gpu"
    else state="runs"; fi
    printf '%-12s limit %3ss  %-14s %s\n' "$name" "$budget" "($state)" "$what"
  done
  printf '%-12s always     %-14s %s\n' pack "(runs)" "tar -czf \$OUT/gpu-results.tar.gz profiles/measured/$OURS profiles/gpus/$OURS.json results/*-$BASE.*; log and summary"
  exit 0
fi

mkdir -p "$OUTDIR" || exit 1
LOG=$OUTDIR/gpu-session.log
SUMMARY=$OUTDIR/summary.txt
: >"$LOG"
: >"$SUMMARY"
{
  echo "gpu_session: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(uname -n), $JOBS cores; device \"${GPU_NAME:-none}\""
  echo "repository: $ROOT ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'no git') + working tree); budget ${BUDGET}s"
  echo "device profile: $OURS; vLLM tables compared: $THEIRS; results: results/*-$BASE.*"
} | tee -a "$LOG"

record() { printf '%-12s %-24s %7s  %s\n' "$1" "$2" "$3" "$4" | tee -a "$SUMMARY" >/dev/null; }

for entry in "${PLAN[@]}"; do
  read -r name budget min gpu what <<<"$entry"
  v="LIMIT_$name" && budget=${!v:-$budget}  # e.g. LIMIT_build=900 for a slow machine
  if ! selected "$name"; then continue; fi
  if [ "$gpu" -eq 1 ] && [ "$NO_GPU" -eq 1 ]; then record "$name" "skipped (--no-gpu)" "-" "$what"; continue; fi
  left=$((DEADLINE - PACK_RESERVE - $(date +%s)))
  if [ "$left" -lt "$min" ]; then
    record "$name" "skipped (time: ${left}s)" "-" "$what"
    echo "=== [$name] skipped: ${left}s left, needs at least ${min}s" | tee -a "$LOG"
    continue
  fi
  limit=$((budget < left - 5 ? budget : left - 5))
  echo "" | tee -a "$LOG"
  echo "=== [$name] $(date -u +%H:%M:%S) limit ${limit}s: $what" | tee -a "$LOG"
  t0=$(date +%s%N)
  uses_choice=0
  case "$name" in profile8b|profile70b|split_ab|kernel_ab|validate|timings|validate_all|ctest) [ -f "$KERNEL_CHOICE" ] && uses_choice=1 ;; esac
  [ "$uses_choice" -eq 1 ] && echo "with the fallback kernels: $(tr '\n' ' ' <"$KERNEL_CHOICE")" | tee -a "$LOG"
  timeout -k 5 "$limit" bash -c "[ $uses_choice -eq 0 ] || . \"\$KERNEL_CHOICE\"; step_$name" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  secs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
  case "$rc" in
    0) status=ok ;;
    77) status=skipped ;;
    124|137) status="TIMEOUT (${limit}s)" ;;
    *) status="FAILED (exit $rc)" ;;
  esac
  echo "=== [$name] $status in ${secs}s" | tee -a "$LOG"
  record "$name" "$status" "${secs}s" "$what"
done

# ---------------------------------------------------------------- pack
echo "" | tee -a "$LOG"
echo "=== [pack] $(date -u +%H:%M:%S)" | tee -a "$LOG"
files=()
for f in "profiles/measured/$OURS" "profiles/gpus/$OURS.json" "results/validation-$BASE.md" "results/validation-$BASE.json" \
         "results/validation-$BASE-all-layers.md" "results/validation-$BASE-all-layers.json" "results/targets-$BASE.md" \
         "results/kernels-vs-vllm-$BASE.md" "results/kernels-vs-vllm-$BASE.csv" "results/kernel-bench-$BASE.json" \
         "results/decode-min-split64-$BASE.md" "results/decode-min-split64-$BASE.csv" \
         "results/decode-$DECODE_OTHER-$BASE.md" "results/decode-$DECODE_OTHER-$BASE.csv" \
         "results/decode-min-split64-$BASE-table.csv" "results/decode-$DECODE_OTHER-$BASE-table.csv" \
         "results/decode-split-nowaves-$BASE.md" "results/decode-split-nowaves-$BASE.csv" \
         "results/decode-split-nowaves-$BASE-table.csv"; do
  [ -e "$ROOT/$f" ] && files+=("$f")
done
if [ "${#files[@]}" -gt 0 ]; then
  if tar -czf "$OUTDIR/gpu-results.tar.gz" -C "$ROOT" "${files[@]}"; then
    record pack ok "-" "gpu-results.tar.gz: ${files[*]}"
    tar -tzvf "$OUTDIR/gpu-results.tar.gz" | tee -a "$LOG"
  else
    record pack "FAILED" "-" "tar"
  fi
else
  record pack "nothing to pack" "-" "no tables or results were made"
fi
total=$(($(date +%s) - START))
{
  echo ""
  echo "=== summary (${total}s of ${BUDGET}s; device \"${GPU_NAME:-none}\"; profile $OURS)"
  cat "$SUMMARY"
  echo "files in $OUTDIR: $(find "$OUTDIR" -maxdepth 1 -type f -printf '%f ')"
  echo "to install the results, at the repository root: tar -xzf gpu-results.tar.gz"
  if [ -f "$ROOT/results/targets-$BASE.md" ]; then echo ""; cat "$ROOT/results/targets-$BASE.md"; fi
} | tee -a "$LOG"
# The log comes back only under 16 MiB: keep its head and tail if it grew larger.
if [ "$(stat -c %s "$LOG")" -gt $((15 * 1024 * 1024)) ]; then
  { head -c 4000000 "$LOG"; echo; echo "[... cut to stay under 16 MiB ...]"; tail -c 10000000 "$LOG"; } >"$LOG.cut" && mv "$LOG.cut" "$LOG"
fi
# Exit 0 when every selected step succeeded (or was skipped by an option or for want of its input).
! grep -qE 'FAILED|TIMEOUT|skipped \(time' "$SUMMARY"
