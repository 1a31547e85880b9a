// CUDA-backend cases beyond the shared suite (tests/test_kernels_cpu.cc), each
// against the float64 reference: long contexts that split decode into many
// partitions (flash-decoding merge), GQA groups up to 32 heads per kv head,
// head_dim 36/96/256 (scalar-load and masked-lane paths), long prefill
// sequences spanning many 32-row tiles, f32 tensors on the CUDA backend, and
// the event timer; and the tensor-core (mma.sync) prefill kernel, forced with
// PDSIM_ATTENTION_KERNEL=mma, over ragged batches at head_dim 64 and 128 and
// GQA ratios 1, 4, 8, checked against the reference and against the CUDA-core
// kernel (PDSIM_ATTENTION_KERNEL=simt) on the same inputs; and the register
// decode kernel (PDSIM_DECODE_KERNEL=regs) against the reference and the
// shared-memory one (=smem) on the same inputs over GQA groups 1 4 8 (and the
// scattered-score variant, =regs-scatter, at groups 5 7 8), head_dim
// 32/64/96/128/256, bf16 and f32, single-pass and many-split contexts; the
// tensor-core decode kernel (=mma) the same way at groups 1-16, head_dim 64
// and 128. Every
// case skips with the reason when there is no CUDA device (or no CUDA build).
// The Hopper wgmma prefill kernel (PDSIM_ATTENTION_KERNEL=wgmma) is checked the
// same way, against the reference and the mma kernel, where the build has
// sm_90a code and the device is compute capability 9.0 (else those cases skip
// saying why); forcing it where it does not apply is checked on every device.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "kernels/backend.h"
#include "kernels/device_info.h"
#include "kernels/scoped_env.h"
#include "kernels/reference.h"
#include "kernel_test_util.h"
#include "kernels/cuda/decode_split.h"  // plan_decode_split: plain host code, tested in every build

namespace k = pdsim::kernels;
using namespace pdsim::kernels::test;

namespace {

std::unique_ptr<k::Backend> cuda_or_skip() {
  std::string why;
  auto b = k::make_cuda_backend(&why);
  if (!b) MESSAGE("CUDA backend test skipped: " << why);
  return b;
}

// run_decode with PDSIM_DECODE_KERNEL=kernel for the call.
std::vector<float> run_decode_with(const char* kernel, k::Backend& b, k::DType dt, int heads, int kv_heads, int hd,
                                   int block_tokens, const std::vector<std::int32_t>& lens, std::mt19937& rng) {
  const k::ScopedEnv env("PDSIM_DECODE_KERNEL", kernel);
  INFO("PDSIM_DECODE_KERNEL=" << kernel << " block_tokens=" << block_tokens << " batch=" << lens.size());
  return run_decode(b, dt, heads, kv_heads, hd, block_tokens, lens, rng);
}

// The decode kernel `variant` (a PDSIM_DECODE_KERNEL value) and the
// shared-memory kernel on the same inputs: each against the float64 reference
// (inside run_decode_with), then against each other.
void decode_variant_agrees(const char* variant, k::Backend& b, k::DType dt, int heads, int kv_heads, int hd,
                           int block_tokens, const std::vector<std::int32_t>& lens, std::mt19937& rng) {
  std::mt19937 same_inputs = rng;  // a copy draws the same inputs for the second kernel
  const auto got = run_decode_with(variant, b, dt, heads, kv_heads, hd, block_tokens, lens, rng);
  const auto smem = run_decode_with("smem", b, dt, heads, kv_heads, hd, block_tokens, lens, same_inputs);
  check_close(std::string(variant) + " vs smem decode heads=" + std::to_string(heads) + "/" +
                  std::to_string(kv_heads) + " hd=" + std::to_string(hd),
              got, std::vector<double>(smem.begin(), smem.end()), tol_for(dt));
}

// Whether the wgmma prefill kernel can run here: a build with sm_90a code and
// a compute capability 9.0 device; else says why (for the skip message).
bool wgmma_runs_here(std::string* why) {
#if defined(PDSIM_HAVE_SM90A)
  const auto devices = k::cuda_devices(why);
  if (devices.empty()) return false;
  if (devices.front().compute_capability != 90) {
    *why = "device " + devices.front().name + " is sm_" + std::to_string(devices.front().compute_capability) +
           " (the wgmma kernel needs compute capability 9.0)";
    return false;
  }
  return true;
#else
  *why = "this build has no sm_90a code (CMAKE_CUDA_ARCHITECTURES lacks 90)";
  return false;
#endif
}

std::unique_ptr<k::Backend> cuda_with_wgmma_or_skip() {
  auto b = cuda_or_skip();
  if (!b) return b;
  std::string why;
  if (!wgmma_runs_here(&why)) {
    MESSAGE("wgmma prefill test skipped: " << why);
    return nullptr;
  }
  return b;
}

}  // namespace

TEST_CASE("cuda kernels: cuBLAS loads at run time with every entry point the backend calls (no device needed)") {
  // pdsim does not link cuBLAS (its start-up cost would fall on every run,
  // CPU-only ones too): the backend loads it on first use. Where a GPU is
  // rare, this is the check that the load works at all.
  if (!k::built_with_cuda()) {
    MESSAGE("skipped: this build has no CUDA support");
    return;
  }
  std::string why;
  CHECK_MESSAGE(k::cublas_loads(&why), why);
  CHECK_MESSAGE(why.find("libcublas") != std::string::npos, why);
}

TEST_CASE("cuda kernels: decode attention with many context splits, large GQA groups, odd head dims") {
  auto b = cuda_or_skip();
  if (!b) return;
  std::mt19937 rng(11);
  // Long and ragged: 1 sequence of 4000 tokens next to short ones -> many splits, some empty.
  run_decode(*b, k::DType::kBF16, 8, 2, 128, 16, {1, 4000, 777, 2049, 32}, rng);
  run_decode(*b, k::DType::kBF16, 16, 2, 64, 16, {3000, 5}, rng);    // group 8
  run_decode(*b, k::DType::kBF16, 32, 1, 64, 32, {1500, 130}, rng);  // group 32 (MQA-like)
  run_decode(*b, k::DType::kBF16, 4, 4, 256, 16, {700, 33}, rng);    // hd 256
  run_decode(*b, k::DType::kBF16, 6, 2, 96, 16, {300, 17}, rng);     // hd 96: masked lanes
  run_decode(*b, k::DType::kBF16, 4, 2, 36, 8, {200, 9}, rng);       // hd 36: scalar loads
  // group 8, hd 170: 49088 bytes of dynamic shared memory (<= 48 KiB) + 256 static (> 48 KiB): must opt in.
  run_decode(*b, k::DType::kBF16, 16, 2, 170, 16, {300, 40}, rng);
}

TEST_CASE("cuda kernels: register and shared-memory decode kernels agree over GQA groups head dims and splits") {
  auto b = cuda_or_skip();
  if (!b) return;
  std::mt19937 rng(18);
  // Ragged: around the 16-token pages and the token-group steps; the plan gives several splits.
  const std::vector<std::int32_t> ragged = {1, 5, 31, 33, 100, 1000, 3000};
  for (int group : {1, 4, 8}) {
    decode_variant_agrees("regs", *b, k::DType::kBF16, 2 * group, 2, 128, 16, ragged, rng);
    decode_variant_agrees("regs", *b, k::DType::kF32, 2 * group, 2, 64, 16, ragged, rng);
  }
  // Head dims: bf16 64 / 96 (12 of 16 lanes) / 256 (a warp per token); f32 36 / 128 / 256 (2 vectors per lane).
  for (int hd : {64, 96, 256}) decode_variant_agrees("regs", *b, k::DType::kBF16, 8, 1, hd, 16, {1, 33, 1000}, rng);
  for (int hd : {36, 128, 256}) decode_variant_agrees("regs", *b, k::DType::kF32, 4, 1, hd, 16, {1, 31, 300}, rng);
  // Groups that round up to the 4 and 8 row buckets; an empty context; block_tokens 8 and 32.
  decode_variant_agrees("regs", *b, k::DType::kBF16, 6, 2, 96, 8, {300, 17, 0}, rng);
  decode_variant_agrees("regs", *b, k::DType::kBF16, 10, 2, 64, 32, {777, 2}, rng);
  // One long sequence: ~80 splits, most of them long.
  decode_variant_agrees("regs", *b, k::DType::kBF16, 16, 2, 128, 16, {20000}, rng);
  // A batch that fills the GPU (batch * kv_heads > 1056 on 132 SMs): one pass over long contexts.
  std::vector<std::int32_t> many(17);
  for (std::size_t i = 0; i < many.size(); ++i) many[i] = 300 + 7 * static_cast<int>(i);
  decode_variant_agrees("regs", *b, k::DType::kBF16, 64, 64, 32, 16, many, rng);
}

// The register kernel's scattered-score variant (PDSIM_DECODE_KERNEL=regs-scatter,
// 5-8 query heads per kv head): its own case, so that the GPU session's
// fallback, which runs the register kernel's cases above, does not judge the
// default kernel by this experiment.
TEST_CASE("cuda kernels: the scattered-score register decode kernel agrees with the shared-memory one") {
  auto b = cuda_or_skip();
  if (!b) return;
  std::mt19937 rng(20);
  const std::vector<std::int32_t> ragged = {1, 5, 31, 33, 100, 1000, 3000};
  for (int group : {5, 7, 8}) {
    decode_variant_agrees("regs-scatter", *b, k::DType::kBF16, 2 * group, 2, 128, 16, ragged, rng);
    decode_variant_agrees("regs-scatter", *b, k::DType::kF32, 2 * group, 2, 64, 16, ragged, rng);
  }
  decode_variant_agrees("regs-scatter", *b, k::DType::kBF16, 8, 1, 256, 16, {1, 33, 1000}, rng);  // TG 32
  decode_variant_agrees("regs-scatter", *b, k::DType::kBF16, 16, 2, 64, 32, {777, 2}, rng);       // TG 8
  decode_variant_agrees("regs-scatter", *b, k::DType::kBF16, 16, 2, 128, 16, {20000}, rng);       // ~80 splits
}

// The tensor-core decode kernel (PDSIM_DECODE_KERNEL=mma; bf16, head_dim 64
// and 128, up to 16 query heads per kv head), an experiment like the one
// above and in its own case for the same reason: ragged contexts around its
// 16-token warp slices and 64-token tiles, groups 1-16, 8- and 32-token
// blocks, many splits, and a batch that fills the GPU in one pass.
TEST_CASE("cuda kernels: the tensor-core decode kernel agrees with the shared-memory one") {
  auto b = cuda_or_skip();
  if (!b) return;
  std::mt19937 rng(21);
  const std::vector<std::int32_t> ragged = {1, 15, 16, 17, 63, 64, 65, 1000, 3000, 0};
  for (int group : {1, 4, 8, 12, 16}) decode_variant_agrees("mma", *b, k::DType::kBF16, 2 * group, 2, 128, 16, ragged, rng);
  decode_variant_agrees("mma", *b, k::DType::kBF16, 16, 2, 64, 8, {777, 2, 130}, rng);   // group 8, hd 64
  decode_variant_agrees("mma", *b, k::DType::kBF16, 9, 1, 64, 32, {1500, 40}, rng);      // group 9, 32-token blocks
  decode_variant_agrees("mma", *b, k::DType::kBF16, 64, 8, 128, 16, {20000}, rng);       // llama-70b shard shape, ~80 splits
  std::vector<std::int32_t> many(160);
  for (std::size_t i = 0; i < many.size(); ++i) many[i] = 200 + 13 * static_cast<int>(i);
  decode_variant_agrees("mma", *b, k::DType::kBF16, 64, 8, 128, 16, many, rng);          // 1280 blocks: one pass
}

TEST_CASE("cuda kernels: the decode split plan covers the context in splits of at least the minimum") {
  namespace kc = pdsim::kernels::cuda;
  for (int min_split : {kc::kDefaultMinSplitTokens, 64, 32})
    for (int sm : {0, 108, 132})
      for (int batch : {1, 2, 8, 32, 64, 128, 256, 1000})
        for (int kv : {1, 8})
          for (int ctx : {0, 1, 31, 64, 256, 257, 1000, 1024, 4096, 32768, 131072}) {
            INFO("min_split=" << min_split << " sm=" << sm << " batch=" << batch << " kv_heads=" << kv
                              << " context=" << ctx);
            const kc::DecodeSplit s = kc::plan_decode_split(batch, 4 * kv, kv, 128, ctx, sm, min_split);
            REQUIRE(s.num_splits >= 1);
            CHECK(s.split_tokens > 0);
            CHECK(s.split_tokens % 32 == 0);  // what launch_decode_attention demands in split mode
            CHECK(static_cast<long long>(s.num_splits) * s.split_tokens >= ctx);
            if (s.num_splits == 1) {
              CHECK(s.workspace_floats == 0);
            } else {
              CHECK(static_cast<long long>(s.num_splits - 1) * s.split_tokens < ctx);  // no empty split at max_context
              CHECK(s.split_tokens >= min_split);
              CHECK(s.workspace_floats == static_cast<std::int64_t>(batch) * 4 * kv * s.num_splits * (128 + 2));
            }
            if (ctx <= min_split) CHECK(s.num_splits == 1);
          }
  // A smaller minimum gives a short context more blocks: batch 1 x 1024 tokens, 8 kv heads, 132 SMs.
  CHECK(kc::plan_decode_split(1, 64, 8, 128, 1024, 132).num_splits == 4);
  CHECK(kc::plan_decode_split(1, 64, 8, 128, 1024, 132, 64).num_splits == 16);
  // llama-3.1-8b at batch x context = 256k on an H100 (132 SMs): >= ~4 blocks per SM, each split >= 256 tokens.
  for (int batch : {2, 8, 32, 64, 128, 256}) {
    const kc::DecodeSplit s = kc::plan_decode_split(batch, 32, 8, 128, 262144 / batch, 132);
    INFO("batch=" << batch << " splits=" << s.num_splits << " x " << s.split_tokens);
    CHECK(static_cast<long long>(batch) * 8 * s.num_splits >= 4 * 132);
  }
}

TEST_CASE("cuda kernels: fitting the decode split to the kernel's waves only lengthens splits, and ends no wave nearly empty") {
  namespace kc = pdsim::kernels::cuda;
  // Waves x tiles per split, the quantity fit_decode_split_to_waves trades, counted here block by block.
  auto wave_time = [](long long blocks, long long wave, int split_tokens) {
    long long waves = 0;
    for (long long left = blocks; left > 0; left -= wave) ++waves;
    return static_cast<double>(waves) * (split_tokens / 32);
  };
  for (int sm : {108, 132})
    for (int resident : {1, 2, 3, 4, 8})
      for (int batch : {1, 2, 3, 8, 13, 32, 64, 100, 128, 256})
        for (int kv : {1, 8})
          for (int ctx : {257, 1000, 4096, 32768, 131072}) {
            const long long wave = static_cast<long long>(resident) * sm;
            const kc::DecodeSplit plan = kc::plan_decode_split(batch, 4 * kv, kv, 128, ctx, sm);
            const kc::DecodeSplit fit = kc::fit_decode_split_to_waves(plan, batch, 4 * kv, kv, 128, ctx, wave);
            INFO("sm=" << sm << " resident=" << resident << " batch=" << batch << " kv=" << kv << " ctx=" << ctx
                       << " plan " << plan.num_splits << " x " << plan.split_tokens << " -> " << fit.num_splits
                       << " x " << fit.split_tokens);
            REQUIRE(fit.num_splits >= 1);
            CHECK(fit.num_splits <= plan.num_splits);
            CHECK(2 * fit.num_splits >= plan.num_splits);
            CHECK(fit.split_tokens % 32 == 0);
            CHECK(static_cast<long long>(fit.num_splits) * fit.split_tokens >= ctx);
            CHECK(static_cast<long long>(fit.num_splits - 1) * fit.split_tokens < ctx);
            CHECK(fit.workspace_floats <= plan.workspace_floats);  // the backend allocates the plan's
            CHECK(fit.workspace_floats == (fit.num_splits > 1 ? static_cast<std::int64_t>(batch) * 4 * kv *
                                                                    fit.num_splits * 130
                                                              : 0));
            // No split count in [plan/2, plan] is more than 2% faster in wave units.
            const long long base = static_cast<long long>(batch) * kv;
            const double got = wave_time(base * fit.num_splits, wave, fit.split_tokens);
            for (int n = (plan.num_splits + 1) / 2; n <= plan.num_splits; ++n) {
              const int tokens = (ctx / 32 + (ctx % 32 != 0) + n - 1) / n * 32;
              const int splits = (ctx + tokens - 1) / tokens;
              CHECK(got <= 1.02 * wave_time(base * splits, wave, tokens) + 1e-9);
            }
          }
  // The H200's case (132 SMs, the tensor-core kernel's 2 resident blocks per SM: waves of 264): the plan's
  // 25 splits at batch 8 x 32768 with 8 kv heads make 1600 blocks, 6 waves and 16; 24 make 1536 (under 6).
  const kc::DecodeSplit plan8 = kc::plan_decode_split(8, 32, 8, 128, 32768, 132);
  REQUIRE(plan8.num_splits == 25);
  CHECK(kc::fit_decode_split_to_waves(plan8, 8, 32, 8, 128, 32768, 264).num_splits == 24);
  // The other 256k shapes there already end their last wave at least half full: unchanged.
  for (int batch : {2, 32, 64, 128, 256}) {
    const kc::DecodeSplit plan = kc::plan_decode_split(batch, 32, 8, 128, 262144 / batch, 132);
    INFO("batch=" << batch);
    CHECK(kc::fit_decode_split_to_waves(plan, batch, 32, 8, 128, 262144 / batch, 264).num_splits == plan.num_splits);
  }
  // Without a wave size (or with one split) the plan stands.
  CHECK(kc::fit_decode_split_to_waves(plan8, 8, 32, 8, 128, 32768, 0).num_splits == plan8.num_splits);
}

TEST_CASE("cuda kernels: the decode kernel switch rejects unknown values and regs where it does not apply") {
  auto b = cuda_or_skip();
  if (!b) return;
  std::mt19937 rng(19);
  // bf16 head_dim 36 (72-byte rows: no 16-byte vectors) and 16 query heads per kv head (> 8 rows).
  for (const auto& shape : {std::pair{4, 36}, std::pair{16, 64}}) {
    const int heads = shape.first, hd = shape.second;
    INFO("heads=" << heads << "/1 hd=" << hd);
    CHECK_THROWS_WITH_AS(run_decode_with("regs", *b, k::DType::kBF16, heads, 1, hd, 16, {40}, rng),
                         doctest::Contains("does not apply"), std::runtime_error);
    CHECK_THROWS_WITH_AS(run_decode_with("regs-scatter", *b, k::DType::kBF16, heads, 1, hd, 16, {40}, rng),
                         doctest::Contains("does not apply"), std::runtime_error);
    CHECK_THROWS_WITH_AS(run_decode_with("fast", *b, k::DType::kBF16, heads, 1, hd, 16, {40}, rng),
                         doctest::Contains("PDSIM_DECODE_KERNEL"), std::runtime_error);
    run_decode_with("auto", *b, k::DType::kBF16, heads, 1, hd, 16, {40, 300}, rng);  // falls back to smem
  }
  // PDSIM_DECODE_MIN_SPLIT: a bad value is an error naming it; 64 splits short contexts and stays exact.
  {
    const k::ScopedEnv bad("PDSIM_DECODE_MIN_SPLIT", "100");
    CHECK_THROWS_WITH_AS(run_decode_with("auto", *b, k::DType::kBF16, 8, 2, 128, 16, {1000}, rng),
                         doctest::Contains("PDSIM_DECODE_MIN_SPLIT"), std::runtime_error);
  }
  {
    const k::ScopedEnv small("PDSIM_DECODE_MIN_SPLIT", "64");
    run_decode_with("auto", *b, k::DType::kBF16, 16, 2, 128, 16, {1000, 63, 64, 65, 0}, rng);
    run_decode_with("smem", *b, k::DType::kF32, 8, 2, 64, 16, {1000, 300}, rng);
  }
  // The scattered-score variant needs 5-8 query heads per kv head: not at 4.
  CHECK_THROWS_WITH_AS(run_decode_with("regs-scatter", *b, k::DType::kBF16, 4, 1, 128, 16, {40}, rng),
                       doctest::Contains("does not apply"), std::runtime_error);
  // The tensor-core kernel: bf16 only, head_dim 64 or 128, at most 16 query heads per kv head.
  CHECK_THROWS_WITH_AS(run_decode_with("mma", *b, k::DType::kF32, 8, 1, 128, 16, {40}, rng),
                       doctest::Contains("does not apply"), std::runtime_error);
  CHECK_THROWS_WITH_AS(run_decode_with("mma", *b, k::DType::kBF16, 8, 1, 96, 16, {40}, rng),
                       doctest::Contains("does not apply"), std::runtime_error);
  CHECK_THROWS_WITH_AS(run_decode_with("mma", *b, k::DType::kBF16, 32, 1, 128, 16, {40}, rng),
                       doctest::Contains("does not apply"), std::runtime_error);
}

// Which kernel auto runs: on compute capability 9.x the tensor-core one where it
// applies (bf16, head_dim 64/128, <= 16 query heads per kv head), elsewhere the
// register one; then the register and the shared-memory ones. Each kernel sums
// in its own order, so auto's output equal bit for bit to one forced kernel's
// on the same inputs says which ran.
TEST_CASE("cuda kernels: auto runs the tensor-core decode kernel on 9.x, else the register one") {
  auto b = cuda_or_skip();
  if (!b) return;
  const bool hopper = k::cuda_devices().front().compute_capability / 10 == 9;
  MESSAGE("device compute capability " << k::cuda_devices().front().compute_capability);
  struct Case { int heads, kv_heads, hd; k::DType dt; const char* want; };
  const Case cases[] = {
      {32, 8, 128, k::DType::kBF16, hopper ? "mma" : "regs"},  // llama-3.1-8b
      {64, 8, 128, k::DType::kBF16, hopper ? "mma" : "regs"},  // llama-3.1-70b
      {16, 2, 64, k::DType::kBF16, hopper ? "mma" : "regs"},
      {32, 8, 128, k::DType::kF32, "regs"},                    // the tensor-core kernel reads bf16
      {32, 2, 128, k::DType::kBF16, hopper ? "mma" : "smem"},  // 16 rows: too many for the register kernel
      {32, 1, 128, k::DType::kBF16, "smem"},                   // 32 rows: too many for both
  };
  for (const Case& c : cases) {
    INFO("heads " << c.heads << "/" << c.kv_heads << " hd " << c.hd << " want " << c.want);
    std::mt19937 rng(29), same_inputs(29);
    const std::vector<std::int32_t> lens = {1, 17, 300, 2000};
    const auto got = run_decode_with("auto", *b, c.dt, c.heads, c.kv_heads, c.hd, 16, lens, rng);
    const auto want = run_decode_with(c.want, *b, c.dt, c.heads, c.kv_heads, c.hd, 16, lens, same_inputs);
    REQUIRE(got.size() == want.size());
    CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
  }
}

// The scalar elementwise kernels (PDSIM_ELEMENTWISE_KERNEL=scalar) at shapes
// where auto runs the 16-byte ones (tests/test_kernels_cpu.cc covers auto),
// against the float64 references; an unknown value is an error naming it.
TEST_CASE("cuda kernels: the scalar elementwise kernels match the references where auto vectorizes") {
  auto b = cuda_or_skip();
  if (!b) return;
  std::mt19937 rng(23);
  {
    const k::ScopedEnv bad("PDSIM_ELEMENTWISE_KERNEL", "fast");
    auto gh = random_values(2 * 8, rng);
    auto g = put(*b, {1, 2 * 8}, gh);
    auto y = poisoned(*b, {1, 8});
    CHECK_THROWS_WITH_AS(b->silu_gate({&g, &y, 1, 8}), doctest::Contains("PDSIM_ELEMENTWISE_KERNEL"),
                         std::runtime_error);
  }
  const k::ScopedEnv scalar("PDSIM_ELEMENTWISE_KERNEL", "scalar");
  CHECK(b->device().find("[PDSIM_ELEMENTWISE_KERNEL=scalar]") != std::string::npos);
  for (bool add_residual : {false, true})
    for (auto [rows, hidden] : std::vector<std::pair<std::int64_t, int>>{{3, 4096}, {2, 8192}})
      check_rmsnorm(*b, "scalar", rows, hidden, rng, add_residual);
  check_silu_gate(*b, "scalar", 5, 1024, rng);
}

TEST_CASE("cuda kernels: prefill attention over long sequences and odd head dims") {
  auto b = cuda_or_skip();
  if (!b) return;
  std::mt19937 rng(12);
  run_prefill(*b, k::DType::kBF16, 8, 2, 128, {1000, 3, 64}, rng);
  run_prefill(*b, k::DType::kBF16, 4, 1, 256, {300, 33}, rng);
  run_prefill(*b, k::DType::kBF16, 6, 3, 96, {95, 1}, rng);
  run_prefill(*b, k::DType::kBF16, 4, 2, 36, {70, 31}, rng);
}

TEST_CASE("cuda kernels: tensor-core prefill attention over ragged batches at head_dim 64 and 128 and GQA 1 4 8") {
  auto b = cuda_or_skip();
  if (!b) return;
  const k::ScopedEnv env("PDSIM_ATTENTION_KERNEL", "mma");  // an error (not a silent fallback) if the mma kernel does not apply
  std::mt19937 rng(15);
  // Lengths around the 16-row mma tiles, the 32/64-key K/V tiles and the 128-row query tiles.
  const std::vector<int> lens = {1, 17, 63, 65, 130, 257};
  for (int hd : {64, 128})
    for (int group : {1, 4, 8}) run_prefill(*b, k::DType::kBF16, 8, 8 / group, hd, lens, rng);
  // One sequence per batch, and long ones: many K/V tiles and query tiles, both buffers reused.
  run_prefill(*b, k::DType::kBF16, 2, 1, 64, {128}, rng);
  run_prefill(*b, k::DType::kBF16, 4, 4, 128, {1}, rng);
  run_prefill(*b, k::DType::kBF16, 8, 2, 128, {1000, 3, 513}, rng);
  run_prefill(*b, k::DType::kBF16, 8, 1, 64, {1500, 129}, rng);
}

TEST_CASE("cuda kernels: tensor-core and CUDA-core prefill kernels agree on the same inputs") {
  auto b = cuda_or_skip();
  if (!b) return;
  std::mt19937 rng(16);
  for (int hd : {64, 128}) {
    const std::vector<int> lens = {1, 17, 63, 65, 130, 257, 700};
    std::mt19937 same_inputs = rng;  // a copy draws the same inputs for the second kernel
    const auto mma = run_prefill(*b, k::DType::kBF16, 8, 2, hd, lens, rng, "mma");
    const auto simt = run_prefill(*b, k::DType::kBF16, 8, 2, hd, lens, same_inputs, "simt");
    // Both round to bf16 once at the end: they differ by about two bf16 ulps at most.
    check_close("mma vs simt prefill hd=" + std::to_string(hd), mma, std::vector<double>(simt.begin(), simt.end()),
                tol_for(k::DType::kBF16));
  }
}

// Chunked prefill / prefix caching (cu_seqlens_k) on each kernel: prefixes
// off and on the kernels' key tiles (32, 64, 128) and past a query block,
// beside 0.
TEST_CASE("cuda kernels: every prefill attention kernel after a cached prefix matches the float64 reference") {
  auto b = cuda_or_skip();
  if (!b) return;
  std::mt19937 rng(18);
  const std::vector<int> lens = {1, 63, 130, 300, 70}, prefix = {200, 0, 1, 129, 1000};
  std::string why;
  const bool wgmma = wgmma_runs_here(&why);
  if (!wgmma) MESSAGE("wgmma prefix case skipped: " << why);
  for (int hd : {64, 128}) {
    run_prefill(*b, k::DType::kBF16, 8, 2, hd, lens, rng, "simt", prefix);
    run_prefill(*b, k::DType::kBF16, 8, 2, hd, lens, rng, "mma", prefix);
    if (wgmma) run_prefill(*b, k::DType::kBF16, 8, 2, hd, lens, rng, "wgmma", prefix);
  }
  run_prefill(*b, k::DType::kF32, 4, 1, 96, {33, 5}, rng, "simt", {31, 64});
}

TEST_CASE("cuda kernels: the prefill kernel switch rejects unknown values and mma where it does not apply") {
  auto b = cuda_or_skip();
  if (!b) return;
  std::mt19937 rng(17);
  const std::vector<int> lens = {5};
  const std::int64_t T = 5;
  for (auto [hd, dt] : {std::pair{96, k::DType::kBF16}, std::pair{64, k::DType::kF32}}) {
    auto qh = random_values(static_cast<std::size_t>(T * 2 * hd), rng);
    auto q = put(*b, {T, 2, hd}, qh, dt);
    std::vector<std::int32_t> cu = {0, 5};
    auto cut = put_i32(*b, {2}, cu);
    auto out = poisoned(*b, {T, 2, hd}, dt);
    const k::PrefillAttentionArgs a{&q, &q, &q, &cut, &out, 1, 2, 2, hd, T, 5};
    {
      const k::ScopedEnv env("PDSIM_ATTENTION_KERNEL", "mma");
      CHECK_THROWS_WITH_AS(b->prefill_attention(a), doctest::Contains("does not apply"), std::runtime_error);
    }
    {
      const k::ScopedEnv env("PDSIM_ATTENTION_KERNEL", "tensorcore");
      CHECK_THROWS_WITH_AS(b->prefill_attention(a), doctest::Contains("PDSIM_ATTENTION_KERNEL"), std::runtime_error);
    }
    const k::ScopedEnv env("PDSIM_ATTENTION_KERNEL", "auto");  // falls back to the CUDA-core kernel
    b->prefill_attention(a);
    const auto got = get(*b, out);
    CHECK(std::none_of(got.begin(), got.end(), [](float x) { return std::isnan(x); }));
  }
}

TEST_CASE("cuda kernels: f32 tensors run in full precision on the CUDA backend") {
  auto b = cuda_or_skip();
  if (!b) return;
  std::mt19937 rng(13);
  const auto f32 = k::DType::kF32;
  run_decode(*b, f32, 8, 2, 64, 16, {1, 1000, 57}, rng);
  run_prefill(*b, f32, 8, 4, 64, {100, 7}, rng);
  const std::int64_t m = 37, n = 70, kk = 129;
  auto xh = random_values(static_cast<std::size_t>(m * kk), rng), wh = random_values(static_cast<std::size_t>(n * kk), rng);
  auto x = put(*b, {m, kk}, xh, f32);
  auto w = put(*b, {n, kk}, wh, f32);
  auto y = poisoned(*b, {m, n}, f32);
  b->gemm({&x, &w, &y, m, n, kk});
  check_close("f32 gemm", get(*b, y), k::ref::gemm(xh, wh, m, n, kk), tol_for(k::DType::kF32));
}

TEST_CASE("cuda kernels: mixed dtypes are rejected with a message and the event timer measures") {
  auto b = cuda_or_skip();
  if (!b) return;
  std::mt19937 rng(14);
  auto xh = random_values(64, rng), wh = random_values(64, rng);
  auto x = put(*b, {8, 8}, xh, k::DType::kBF16);
  auto w = put(*b, {8, 8}, wh, k::DType::kF32);
  auto y = b->allocate({8, 8}, k::DType::kBF16);
  CHECK_THROWS_WITH_AS(b->gemm({&x, &w, &y, 8, 8, 8}), doctest::Contains("dtype"), std::runtime_error);
  auto big = b->allocate({1024, 1024}, k::DType::kBF16);
  auto out = b->allocate({1024, 1024}, k::DType::kBF16);
  b->timer_start();
  b->gemm({&big, &big, &out, 1024, 1024, 1024});
  const double s = b->timer_stop_s();
  CHECK(s > 0);
  CHECK(s < 10);
}

TEST_CASE("cuda kernels: wgmma prefill attention over ragged batches at head_dim 64 and 128 and GQA 1 4 8") {
  auto b = cuda_with_wgmma_or_skip();
  if (!b) return;
  // An error (not a silent fallback) if it does not apply.
  const k::ScopedEnv env("PDSIM_ATTENTION_KERNEL", "wgmma");
  std::mt19937 rng(18);
  // Lengths around the 64-row warpgroup tiles, the 128-key K/V tiles and the 128-row query tiles.
  const std::vector<int> lens = {1, 63, 65, 127, 200, 1000};
  for (int hd : {64, 128})
    for (int group : {1, 4, 8}) run_prefill(*b, k::DType::kBF16, 8, 8 / group, hd, lens, rng);
  // One sequence per batch, exact tile multiples, and a long one (both stages reused many times).
  run_prefill(*b, k::DType::kBF16, 2, 1, 64, {128}, rng);
  run_prefill(*b, k::DType::kBF16, 4, 4, 128, {1}, rng);
  run_prefill(*b, k::DType::kBF16, 2, 2, 128, {256, 64}, rng);
  run_prefill(*b, k::DType::kBF16, 4, 1, 128, {2100, 129}, rng);
}

TEST_CASE("cuda kernels: wgmma and mma prefill kernels agree on the same inputs") {
  auto b = cuda_with_wgmma_or_skip();
  if (!b) return;
  std::mt19937 rng(19);
  for (int hd : {64, 128}) {
    const std::vector<int> lens = {1, 17, 63, 65, 130, 257, 700};
    std::mt19937 same_inputs = rng;  // a copy draws the same inputs for the second kernel
    const auto wgmma = run_prefill(*b, k::DType::kBF16, 8, 2, hd, lens, rng, "wgmma");
    const auto mma = run_prefill(*b, k::DType::kBF16, 8, 2, hd, lens, same_inputs, "mma");
    // Both round P and the output to bf16: they differ by about two bf16 ulps at most.
    check_close("wgmma vs mma prefill hd=" + std::to_string(hd), wgmma, std::vector<double>(mma.begin(), mma.end()),
                tol_for(k::DType::kBF16));
  }
}

TEST_CASE("cuda kernels: forcing the wgmma prefill kernel where it does not apply is an error naming why") {
  auto b = cuda_or_skip();
  if (!b) return;
  std::mt19937 rng(20);
  std::string why_not_here;
  const bool runs_here = wgmma_runs_here(&why_not_here);
  struct Case {
    int hd;
    k::DType dt;
    const char* why;  // a word of the reason; nullptr: applies wherever wgmma runs
  };
  for (const Case& c : {Case{96, k::DType::kBF16, "head_dim"}, Case{64, k::DType::kF32, "f32"},
                        Case{64, k::DType::kBF16, nullptr}, Case{128, k::DType::kBF16, nullptr}}) {
    const std::int64_t T = 5;
    auto qh = random_values(static_cast<std::size_t>(T * 2 * c.hd), rng);
    auto q = put(*b, {T, 2, c.hd}, qh, c.dt);
    auto cut = put_i32(*b, {2}, std::vector<std::int32_t>{0, 5});
    auto out = poisoned(*b, {T, 2, c.hd}, c.dt);
    const k::PrefillAttentionArgs a{&q, &q, &q, &cut, &out, 1, 2, 2, c.hd, T, 5};
    const k::ScopedEnv env("PDSIM_ATTENTION_KERNEL", "wgmma");
    if (c.why != nullptr) {
      CHECK_THROWS_WITH_AS(b->prefill_attention(a), doctest::Contains(c.why), std::runtime_error);
      CHECK_THROWS_WITH_AS(b->prefill_attention(a), doctest::Contains("wgmma"), std::runtime_error);
    } else if (!runs_here) {  // no sm_90a code in this build, or not a compute capability 9.0 device
      MESSAGE("wgmma does not run here (" << why_not_here << "): forcing it must say so");
      CHECK_THROWS_WITH_AS(b->prefill_attention(a), doctest::Contains("does not apply"), std::runtime_error);
      CHECK_THROWS_WITH_AS(b->prefill_attention(a), doctest::Contains("sm_"), std::runtime_error);
    } else {
      b->prefill_attention(a);
      const auto got = get(*b, out);
      CHECK(std::none_of(got.begin(), got.end(), [](float x) { return std::isnan(x); }));
    }
  }
  // An unknown value: the message lists the allowed ones, wgmma among them.
  const k::ScopedEnv env("PDSIM_ATTENTION_KERNEL", "tensorcore");
  auto qh = random_values(10, rng);
  auto q = put(*b, {5, 1, 2}, qh, k::DType::kBF16);
  auto cut = put_i32(*b, {2}, std::vector<std::int32_t>{0, 5});
  auto out = poisoned(*b, {5, 1, 2}, k::DType::kBF16);
  CHECK_THROWS_WITH_AS(b->prefill_attention({&q, &q, &q, &cut, &out, 1, 1, 1, 2, 5, 5}), doctest::Contains("wgmma"),
                       std::runtime_error);
}
