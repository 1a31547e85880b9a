// The mma.sync primitives' host versions (tests/emu/fake_cuda/emu_mma_sm80.h)
// and the tensor-core prefill kernel (kernels/cuda/prefill_attention_mma.cuh),
// its real device code run on the host by emu::Device.
//
// Why the prefill kernel here: it passed its float64-reference test on an H100
// (2026-11-25), so the hardware agrees with how it uses ldmatrix, ldmatrix.trans
// and mma.m16n8k16. If the emulated primitives reproduce its results, they
// agree with the hardware at least as far as that kernel exercises them, which
// is what the emulated test of the tensor-core decode kernel
// (test_decode_regs_emu.cc) leans on. A first case checks one mma against a
// plain matrix product, with fragments built from the PTX ISA tables; negative
// controls (a transposed fragment) show it can fail.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "kernels/cuda/prefill_attention_mma.cuh"
#include "kernels/reference.h"
#include "tests/emu/emu_test_util.h"

namespace kc = pdsim::kernels::cuda;
using kc::bf16;
using namespace pdsim::kernels::cuda::emu_test;

namespace {

std::uint32_t pair_bits(float lo, float hi) {
  return static_cast<std::uint32_t>(__float2bfloat16_rn(lo).x) |
         static_cast<std::uint32_t>(__float2bfloat16_rn(hi).x) << 16;
}

// One warp: A (16x16) and B (16x8) small integers (exact in bf16 and fp32),
// fragments per the PTX ISA's m16n8k16 tables; returns the lanes' C elements
// scattered back to a 16x8 matrix. transpose_b: a planted layout bug.
std::array<std::array<double, 8>, 16> warp_mma(const std::array<std::array<float, 16>, 16>& A,
                                               const std::array<std::array<float, 8>, 16>& B, bool transpose_b) {
  std::array<std::array<double, 8>, 16> C{};
  emu::Device dev;
  const bool ok = dev.launch({1, 1, 1}, {32, 1, 1}, [&] {
    const int lane = static_cast<int>(threadIdx.x), g = lane / 4, t = lane % 4;
    const std::uint32_t a[4] = {pair_bits(A[g][2 * t], A[g][2 * t + 1]), pair_bits(A[g + 8][2 * t], A[g + 8][2 * t + 1]),
                                pair_bits(A[g][2 * t + 8], A[g][2 * t + 9]),
                                pair_bits(A[g + 8][2 * t + 8], A[g + 8][2 * t + 9])};
    // B column g, k rows 2t, 2t+1 (b0) and 2t+8, 2t+9 (b1); the bug reads row g of k instead.
    auto b_at = [&](int k, int n) { return transpose_b ? B[n][k % 8] : B[k][n]; };
    const std::uint32_t b0 = pair_bits(b_at(2 * t, g), b_at(2 * t + 1, g));
    const std::uint32_t b1 = pair_bits(b_at(2 * t + 8, g), b_at(2 * t + 9, g));
    float c[4] = {0.f, 0.f, 0.f, 0.f};
    mma_bf16_16816(c, a, b0, b1);
    C[g][2 * t] = c[0];
    C[g][2 * t + 1] = c[1];
    C[g + 8][2 * t] = c[2];
    C[g + 8][2 * t + 1] = c[3];
  });
  REQUIRE(ok);
  return C;
}

}  // namespace

TEST_CASE("cuda kernels emulated: one m16n8k16 mma built from the PTX fragment tables is a matrix product") {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> small(-8, 8);
  std::array<std::array<float, 16>, 16> A{};
  std::array<std::array<float, 8>, 16> B{};
  for (auto& row : A)
    for (auto& x : row) x = static_cast<float>(small(rng));
  for (auto& row : B)
    for (auto& x : row) x = static_cast<float>(small(rng));
  auto expect = [&](const std::array<std::array<double, 8>, 16>& C) {
    int bad = 0;
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 8; ++j) {
        double sum = 0;
        for (int k = 0; k < 16; ++k) sum += static_cast<double>(A[i][k]) * B[k][j];
        bad += C[i][j] != sum;
      }
    return bad;
  };
  CHECK(expect(warp_mma(A, B, false)) == 0);
  CHECK(expect(warp_mma(A, B, true)) > 0);  // negative control: a wrong B fragment is seen
}

namespace {

template <class Cfg>
void check_prefill_mma(int heads, int kv_heads, const std::vector<int>& lens, std::mt19937& rng,
                       const std::vector<int>& prefix = {}) {
  PrefillBatch<bf16> c("mma", heads, kv_heads, Cfg::HD, lens, rng, prefix);
  INFO(c.what);
  emu::Device dev;
  dev.allow_reads(c.q.get(), c.q.bytes());
  dev.allow_reads(c.k.get(), c.k.bytes());
  dev.allow_reads(c.v.get(), c.v.bytes());
  // The launcher's grid (prefill_mma_launch in attention.cu).
  const bool ok =
      dev.launch({static_cast<unsigned>((c.max_len + Cfg::BM - 1) / Cfg::BM), static_cast<unsigned>(heads),
                  static_cast<unsigned>(lens.size())},
                 {Cfg::kThreads, 1, 1}, [&] { kc::prefill_attention_mma_kernel<Cfg>(c.p); }, Cfg::kSmemBytes);
  INFO("emulator: " << dev.error());
  REQUIRE(ok);
  check_close(c.what, c.out, c.reference());
}

}  // namespace

// Both shipped configurations (head_dim 64: Q in registers, 64-key tiles;
// 128: Q re-read from shared memory, 32-key tiles), ragged lengths either side
// of the 128-row query block and the key tiles, GQA and MHA.
TEST_CASE("cuda kernels emulated: tensor-core prefill attention matches the float64 reference over ragged batches") {
  std::mt19937 rng(31);
  check_prefill_mma<kc::MmaPrefill64>(4, 1, {1, 63, 65, 130}, rng);
  check_prefill_mma<kc::MmaPrefill128>(2, 2, {1, 31, 33, 129}, rng);
  check_prefill_mma<kc::MmaPrefill128>(4, 2, {200}, rng);
}

// Chunks after a cached prefix (cu_seqlens_k): prefixes off and on the key
// tiles (64 and 32 keys) and past a whole 128-row query block, beside 0, so
// warps skip tiles and mask diagonals at shifted positions.
TEST_CASE("cuda kernels emulated: tensor-core prefill attention after a cached prefix matches the float64 reference") {
  std::mt19937 rng(32);
  check_prefill_mma<kc::MmaPrefill64>(4, 1, {1, 63, 65, 130}, rng, {200, 0, 1, 64});
  check_prefill_mma<kc::MmaPrefill128>(2, 2, {31, 129}, rng, {33, 150});
}
