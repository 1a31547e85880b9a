// CUDA-backend cases beyond the shared suite (tests/test_kernels_cpu.cc), each
// against the float64 reference: long contexts that split decode into many
// partitions (flash-decoding merge), GQA groups up to 32 heads per kv head,
// head_dim 36/96/256 (scalar-load and masked-lane paths), long prefill
// sequences spanning many 32-row tiles, f32 tensors on the CUDA backend, and
// the event timer; and the tensor-core (mma.sync) prefill kernel, forced with
// PDSIM_ATTENTION_KERNEL=mma, over ragged batches at head_dim 64 and 128 and
// GQA ratios 1, 4, 8, checked against the reference and against the CUDA-core
// kernel (PDSIM_ATTENTION_KERNEL=simt) on the same inputs. Every case skips
// with the reason when there is no CUDA device (or no CUDA build).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "kernels/backend.h"
#include "kernels/scoped_env.h"
#include "kernels/reference.h"
#include "kernel_test_util.h"

namespace k = pdsim::kernels;
using namespace pdsim::kernels::test;

namespace {

std::unique_ptr<k::Backend> cuda_or_skip() {
  std::string why;
  auto b = k::make_cuda_backend(&why);
  if (!b) MESSAGE("CUDA backend test skipped: " << why);
  return b;
}

// Prefill attention on random inputs drawn from `rng`, checked against the
// float64 reference; returns the output. `kernel` (when set) picks the CUDA
// prefill kernel (PDSIM_ATTENTION_KERNEL) for the call.
std::vector<float> run_prefill(k::Backend& b, k::DType dt, int heads, int kv_heads, int hd,
                               const std::vector<int>& lens, std::mt19937& rng, const char* kernel = nullptr) {
  std::vector<std::int32_t> cu{0};
  for (int l : lens) cu.push_back(cu.back() + l);
  const std::int64_t T = cu.back();
  auto qh = random_values(static_cast<std::size_t>(T * heads * hd), rng);
  auto kh = random_values(static_cast<std::size_t>(T * kv_heads * hd), rng);
  auto vh = random_values(static_cast<std::size_t>(T * kv_heads * hd), rng);
  auto q = put(b, {T, heads, hd}, qh, dt);
  auto kt = put(b, {T, kv_heads, hd}, kh, dt);
  auto v = put(b, {T, kv_heads, hd}, vh, dt);
  auto cut = put_i32(b, {static_cast<std::int64_t>(cu.size())}, cu);
  auto out = poisoned(b, {T, heads, hd}, dt);
  {
    std::unique_ptr<k::ScopedEnv> env;
    if (kernel) env = std::make_unique<k::ScopedEnv>("PDSIM_ATTENTION_KERNEL", kernel);
    b.prefill_attention({&q, &kt, &v, &cut, &out, static_cast<int>(lens.size()), heads, kv_heads, hd, T,
                         *std::max_element(lens.begin(), lens.end())});
  }
  auto got = get(b, out);
  check_close(std::string(kernel ? kernel : "auto") + " prefill heads=" + std::to_string(heads) + "/" +
                  std::to_string(kv_heads) + " hd=" + std::to_string(hd),
              got, k::ref::prefill_attention(qh, kh, vh, cu, heads, kv_heads, hd), tol_for(dt));
  return got;
}

}  // namespace

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
