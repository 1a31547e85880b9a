// The CUDA-core attention kernels of kernels/cuda/attention_simt.cuh
// (prefill_attention_kernel, "simt", and the shared-memory decode kernel
// decode_attention_kernel, "smem", then decode_reduce_kernel), their real
// device code run on the host by emu::Device (tests/emu/fake_cuda), against
// the float64 references, on ragged batches: every output element within
// atol + rtol |ref| of the reference (outputs and workspace NaN-poisoned
// first, so an unwritten element fails).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "kernels/cuda/attention_simt.cuh"
#include "kernels/cuda/decode_reduce.cuh"
#include "kernels/reference.h"
#include "tests/emu/emu_test_util.h"
#include "tests/paged_block_table.h"

namespace kc = pdsim::kernels::cuda;
namespace simt = pdsim::kernels::cuda::simt;
using kc::bf16;
using namespace pdsim::kernels::cuda::emu_test;
using pdsim::kernels::test::PagedBlockTable;
using pdsim::kernels::test::shuffled_block_table;

namespace {

// Calls f(std::integral_constant<int, DPL>) for head_dim hd, as the launchers'
// switch on simt::dims_per_lane does.
template <class F>
void with_dpl(int hd, F&& f) {
  switch (simt::dims_per_lane(hd)) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 4: return f(std::integral_constant<int, 4>{});
    default: return f(std::integral_constant<int, 8>{});
  }
}

std::string lens_text(const std::vector<int>& lens) {
  std::string s;
  for (int l : lens) s += std::to_string(l) + " ";
  return s;
}

// ---------------------------------------------------------------- prefill ---
template <class T>
void check_prefill(int heads, int kv_heads, int hd, const std::vector<int>& lens, std::mt19937& rng,
                   const std::vector<int>& prefix = {}) {
  PrefillBatch<T> c("simt", heads, kv_heads, hd, lens, rng, prefix);
  INFO(c.what);
  emu::Device dev;
  bool ok = false;
  with_dpl(hd, [&](auto dpl) {
    ok = dev.launch({static_cast<unsigned>((c.max_len + simt::kPrefillRows - 1) / simt::kPrefillRows),
                     static_cast<unsigned>(heads), static_cast<unsigned>(lens.size())},
                    {simt::kPrefillWarps * 32, 1, 1},
                    [&] { simt::prefill_attention_kernel<T, decltype(dpl)::value>(c.p); }, simt::prefill_smem_bytes(hd));
  });
  INFO("emulator: " << dev.error());
  REQUIRE(ok);
  check_close(c.what, c.out, c.reference());
}

// ----------------------------------------------------------------- decode ---
// split_tokens 0: one pass; else that many tokens per split (a multiple of 32),
// at least 2 splits (so short sequences get empty ones).
template <class T>
void check_decode(int heads, int kv_heads, int hd, int bt, const std::vector<int>& lens, int split_tokens,
                  std::mt19937& rng) {
  const int B = static_cast<int>(lens.size());
  int max_ctx = 0;
  for (int l : lens) max_ctx = std::max(max_ctx, l);
  const PagedBlockTable paged = shuffled_block_table(lens, bt, rng);
  const int max_blocks = paged.max_blocks, num_blocks = paged.num_blocks;
  const std::vector<std::int32_t>& table = paged.table;
  const std::size_t cache_n = static_cast<std::size_t>(num_blocks) * bt * kv_heads * hd;
  std::vector<float> qf = never_zero(static_cast<std::size_t>(B) * heads * hd, rng), kf = never_zero(cache_n, rng),
                     vf = never_zero(cache_n, rng);
  auto q = store<T>(qf), k = store<T>(kf), v = store<T>(vf);
  auto out = poisoned<T>(qf.size());
  kc::DecodeAttentionParams<T> p;
  p.q = q.get();
  p.k_cache = k.get();
  p.v_cache = v.get();
  p.block_table = table.data();
  p.context_lens = lens.data();
  p.out = out.get();
  p.batch = B;
  p.heads = heads;
  p.kv_heads = kv_heads;
  p.head_dim = hd;
  p.block_tokens = bt;
  p.max_blocks_per_seq = max_blocks;
  p.max_context_len = max_ctx;
  p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  std::vector<float> ws;
  if (split_tokens > 0) {
    p.split_tokens = split_tokens;
    p.num_splits = std::max(2, (max_ctx + split_tokens - 1) / split_tokens);
    const long long bhs = static_cast<long long>(B) * heads * p.num_splits;
    ws.assign(static_cast<std::size_t>(bhs * (hd + 2)), NAN);  // partial_acc | partial_max | partial_sum
    p.partial_acc = ws.data();
    p.partial_max = ws.data() + bhs * hd;
    p.partial_sum = p.partial_max + bhs;
  }
  const std::string what = std::string(sizeof(T) == 2 ? "bf16" : "f32") + " smem decode heads=" +
                           std::to_string(heads) + "/" + std::to_string(kv_heads) + " hd=" + std::to_string(hd) +
                           " block_tokens=" + std::to_string(bt) + " lens=" + lens_text(lens) +
                           "splits=" + std::to_string(p.num_splits) + "x" + std::to_string(split_tokens);
  INFO(what);
  const int group = heads / kv_heads;
  emu::Device dev;
  bool ok = false;
  with_dpl(hd, [&](auto dpl) {
    constexpr int DPL = decltype(dpl)::value;
    const emu::Dim3 grid{static_cast<unsigned>(p.num_splits), static_cast<unsigned>(kv_heads),
                         static_cast<unsigned>(B)};
    const emu::Dim3 block{simt::kDecodeWarps * 32, 1, 1};
    const std::size_t smem = simt::decode_smem_bytes(group, hd);
    switch (simt::decode_rows_per_warp(group)) {
      case 1: ok = dev.launch(grid, block, [&] { simt::decode_attention_kernel<T, DPL, 1>(p); }, smem); break;
      case 2: ok = dev.launch(grid, block, [&] { simt::decode_attention_kernel<T, DPL, 2>(p); }, smem); break;
      case 4: ok = dev.launch(grid, block, [&] { simt::decode_attention_kernel<T, DPL, 4>(p); }, smem); break;
      default: ok = dev.launch(grid, block, [&] { simt::decode_attention_kernel<T, DPL, 8>(p); }, smem); break;
    }
  });
  if (ok && p.num_splits > 1)
    ok = dev.launch({static_cast<unsigned>(B * heads), 1, 1}, {128, 1, 1}, [&] { kc::decode_reduce_kernel<T>(p); });
  INFO("emulator: " << dev.error());
  REQUIRE(ok);
  check_close(what, out,
              pdsim::kernels::ref::decode_attention(qf, kf, vf, table, lens, heads, kv_heads, hd, bt, max_blocks));
}

}  // namespace

// Ragged sequences either side of the 32-row query block and 32-key tile (1,
// 31, 33, 100: several query blocks, the last one partial), GQA 1 and 4, head
// dims on the 16-byte path (64, 128) and off it (36 f32, 40 bf16: scalar loads;
// 170: DPL 8 with idle lanes), bf16 and f32.
TEST_CASE("cuda kernels emulated: CUDA-core prefill attention matches the float64 reference over ragged batches") {
  std::mt19937 rng(2024);
  const std::vector<int> ragged = {1, 31, 33, 100};
  check_prefill<bf16>(2, 2, 128, ragged, rng);
  check_prefill<bf16>(4, 1, 64, ragged, rng);
  check_prefill<float>(2, 2, 64, ragged, rng);
  check_prefill<float>(4, 1, 128, ragged, rng);
  check_prefill<float>(4, 1, 36, {33, 1, 70}, rng);
  check_prefill<bf16>(4, 1, 40, {33, 1, 70}, rng);
  check_prefill<bf16>(1, 1, 170, {31, 40}, rng);
  check_prefill<float>(1, 1, 16, {65, 2}, rng);
}

// Chunks after a cached prefix (cu_seqlens_k): prefixes either side of the
// 32-key tile (so a row's keys may end before a tile another row reads) and
// 0 beside non-zero in one batch.
TEST_CASE("cuda kernels emulated: CUDA-core prefill attention after a cached prefix matches the float64 reference") {
  std::mt19937 rng(2025);
  check_prefill<bf16>(4, 1, 64, {1, 31, 33, 100}, rng, {5, 0, 64, 37});
  check_prefill<float>(2, 2, 128, {40, 7}, rng, {100, 1});
  check_prefill<bf16>(4, 1, 40, {33, 2}, rng, {31, 33});
}

// Ragged paged contexts (0, 1, 33, 1000) in one pass and with splits (most of
// them empty for the short sequences), head dims only this kernel takes (36,
// 170: not 16-byte multiples in bf16; 170 also > 128 lanes' worth) and groups
// past the register kernel's 8 (16, 32: 4 and 8 rows per warp), bf16 and f32.
TEST_CASE("cuda kernels emulated: shared-memory decode attention matches the float64 reference over ragged paged batches") {
  std::mt19937 rng(77);
  const std::vector<int> ragged = {0, 1, 33, 1000};
  check_decode<bf16>(4, 1, 128, 16, ragged, 0, rng);      // group 4: 1 row per warp, one pass
  check_decode<bf16>(4, 1, 128, 16, ragged, 256, rng);    // 4 splits of 256
  check_decode<float>(8, 2, 64, 16, ragged, 96, rng);     // group 4, 11 splits of 96
  check_decode<bf16>(16, 1, 36, 16, ragged, 128, rng);    // hd 36 bf16 (scalar loads), group 16: 4 rows per warp
  check_decode<float>(6, 1, 36, 8, ragged, 0, rng);       // group 6: 2 rows per warp, 8-token blocks
  check_decode<bf16>(32, 1, 170, 16, {0, 1, 33, 300}, 64, rng);  // group 32: 8 rows per warp, DPL 8
  check_decode<float>(32, 1, 170, 32, {1, 33, 300}, 0, rng);
  check_decode<bf16>(2, 2, 32, 16, {1, 33, 0, 500}, 32, rng);    // MHA, hd 32 (DPL 1), 32-token splits
}
