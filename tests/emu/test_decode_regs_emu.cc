// The register decode kernel (kernels/cuda/decode_attention_regs.cuh), its
// scattered-score variant, the tensor-core decode kernel
// (kernels/cuda/decode_attention_mma.cuh, where it applies: bf16, head_dim 64
// or 128, up to 16 query heads per kv head) and the split merge
// (kernels/cuda/decode_reduce.cuh), run on the host: this file
// includes the real device code and compiles it as host C++ against the fake
// CUDA headers in tests/emu/fake_cuda (first on this target's include path),
// and emu::Device runs each block's 128 threads as fibers, shuffles as warp
// exchanges, __syncthreads as a block barrier (see emu_device.h for the rules
// it checks and what it cannot model). The launch picks its instantiation
// through decode_regs::dispatch and its splits through plan_decode_split, as
// attention.cu does, so this checks the kernel's indexing, masking, online
// softmax and merges on any machine, CUDA toolkit or not; the GPU tests in
// tests/test_kernels_cuda.cc check the same kernel on a device.
//
// Each case: random never-zero q/k/v rounded to T (the reference sees what the
// device stores), a shuffled block table, NaN-poisoned output and workspace,
// against the float64 reference (kernels/reference.h) with atol + rtol |ref|;
// and every K/V vector loaded exactly once (16-byte loads or cp.async copies,
// aligned, inside the caches).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include <doctest/doctest.h>

#include "kernels/cuda/decode_attention_mma.cuh"
#include "kernels/cuda/decode_attention_regs.cuh"
#include "kernels/cuda/decode_reduce.cuh"
#include "kernels/cuda/decode_split.h"
#include "kernels/reference.h"
#include "tests/emu/emu_test_util.h"
#include "tests/paged_block_table.h"

namespace kc = pdsim::kernels::cuda;
namespace dr = pdsim::kernels::cuda::decode_regs;
namespace dm = pdsim::kernels::cuda::decode_mma;
using kc::bf16;
using kc::emu_test::Aligned;
using pdsim::kernels::test::PagedBlockTable;
using pdsim::kernels::test::shuffled_block_table;
using kc::emu_test::never_zero;
using kc::emu_test::to_float;

namespace {

// How the case splits the context: the launcher's plan (plan_decode_split on a
// 132-SM device), one pass, split_tokens forced (at least 2 splits, so a
// short batch gets an empty split), or the plan fitted to waves of
// wave_blocks blocks (fit_decode_split_to_waves, as the launcher does; the
// case must be one the fit changes) in the plan's larger workspace, laid out
// by set_decode_split as the launcher lays it.
struct SplitMode {
  enum Kind { kPlan, kOnePass, kForced, kFitted } kind = kPlan;
  int split_tokens = 0;  // kForced: a multiple of 32, as launch_decode_attention demands
  int wave_blocks = 0;   // kFitted
};
constexpr SplitMode kPlan{SplitMode::kPlan, 0, 0};
constexpr SplitMode kOnePass{SplitMode::kOnePass, 0, 0};
constexpr SplitMode forced(int tokens) { return {SplitMode::kForced, tokens, 0}; }
constexpr SplitMode fitted(int wave_blocks) { return {SplitMode::kFitted, 0, wave_blocks}; }

struct Case {
  int heads, kv_heads, head_dim, block_tokens;
  std::vector<int> lens;  // context tokens per sequence
  SplitMode split = kPlan;
  double q_scale = 1.0;  // > 1: peaked softmax (large scores)
};

std::string describe(const Case& c, int splits, int split_tokens, int elem_bytes) {
  std::string s = (elem_bytes == 2 ? "bf16" : "f32") + std::string(" heads=") + std::to_string(c.heads) + "/" +
                  std::to_string(c.kv_heads) + " hd=" + std::to_string(c.head_dim) +
                  " block_tokens=" + std::to_string(c.block_tokens) + " lens=";
  for (int l : c.lens) s += std::to_string(l) + " ";
  return s + "splits=" + std::to_string(splits) + "x" + std::to_string(split_tokens);
}

enum class Variant { kRegs, kRegsScatter, kMma, kMma2 };
const char* variant_name(Variant v) {
  return v == Variant::kRegs ? "register kernel, all-reduced scores"
         : v == Variant::kRegsScatter ? "register kernel, scattered scores"
         : v == Variant::kMma         ? "tensor-core kernel, 3 stages"
                                      : "tensor-core kernel, 2 stages (a device with less shared memory)";
}
// Where the tensor-core kernel applies (as try_decode_mma in attention.cu asks).
template <class T>
bool mma_applies(int head_dim, int group) {
  return sizeof(T) == 2 && (head_dim == 64 || head_dim == 128) && group <= dm::kRows;
}

// The launcher's two passes on the emulator: the pass-1 kernel over grid
// (num_splits, kv_heads, batch), then decode_reduce_kernel over (batch * heads)
// in split mode. Returns false with the emulator's error on a broken rule.
template <class T>
bool launch_decode(emu::Device& dev, const kc::DecodeAttentionParams<T>& p, Variant variant) {
  bool ok = true;
  const emu::Dim3 grid{static_cast<unsigned>(p.num_splits), static_cast<unsigned>(p.kv_heads),
                       static_cast<unsigned>(p.batch)};
  if (variant == Variant::kMma || variant == Variant::kMma2) {
    if constexpr (std::is_same_v<T, bf16>) {
      // A shared-memory limit that makes dispatch pick 3 stages (an H100's 227 KiB) or 2.
      const std::size_t limit = variant == Variant::kMma ? 227 * 1024 : p.head_dim == 64 ? 50 * 1024 : 100 * 1024;
      const bool launched = dm::dispatch(p.head_dim, limit, [&](auto cfg) {
        using C = decltype(cfg);
        CHECK(C::NST == (variant == Variant::kMma ? 3 : 2));
        ok = dev.launch(grid, {dm::kThreads, 1, 1}, [&] { dm::decode_attention_mma_kernel<C>(p); }, C::kSmemBytes);
      });
      REQUIRE(launched);
    }
  } else {
    dr::dispatch<T>(p.head_dim, p.heads / p.kv_heads, variant == Variant::kRegsScatter,
                    [&](auto tg, auto vpl, auto gb, auto sc) {
                      constexpr int TG = decltype(tg)::value, VPL = decltype(vpl)::value, GB = decltype(gb)::value;
                      constexpr bool kScatter = decltype(sc)::value;
                      ok = dev.launch(grid, {dr::kThreads, 1, 1},
                                      [&] { dr::decode_regs_kernel<T, TG, VPL, GB, kScatter>(p); });
                    });
  }
  if (ok && p.num_splits > 1)
    ok = dev.launch({static_cast<unsigned>(p.batch * p.heads), 1, 1}, {128, 1, 1},
                    [&] { kc::decode_reduce_kernel<T>(p); });
  return ok;
}

template <class T>
void check_case(const Case& c, std::mt19937& rng) {
  constexpr int E = 16 / static_cast<int>(sizeof(T));
  const int B = static_cast<int>(c.lens.size()), hd = c.head_dim, bt = c.block_tokens;
  REQUIRE(hd % E == 0);
  int max_ctx = 0;
  long long total_tokens = 0;
  for (int l : c.lens) {
    max_ctx = std::max(max_ctx, l);
    total_tokens += l;
  }
  const PagedBlockTable paged = shuffled_block_table(c.lens, bt, rng);
  const int max_blocks = paged.max_blocks, num_blocks = paged.num_blocks;
  const std::vector<std::int32_t>& table = paged.table;

  // q (B, heads, hd); caches (num_blocks, bt, kv_heads, hd).
  const std::size_t q_n = static_cast<std::size_t>(B) * c.heads * hd;
  const std::size_t cache_n = static_cast<std::size_t>(num_blocks) * bt * c.kv_heads * hd;
  std::vector<float> qf = never_zero(q_n, rng, c.q_scale), kf = never_zero(cache_n, rng, 1.0),
                     vf = never_zero(cache_n, rng, 1.0);
  Aligned<T> q(q_n), k(cache_n), v(cache_n), out(q_n);
  auto store = [](std::vector<float>& host, T* dev) {  // round to T; the reference reads the rounded values
    for (std::size_t i = 0; i < host.size(); ++i) {
      dev[i] = kc::from_f32<T>(host[i]);
      host[i] = to_float(dev[i]);
    }
  };
  store(qf, q.get());
  store(kf, k.get());
  store(vf, v.get());
  for (std::size_t i = 0; i < q_n; ++i) out.get()[i] = kc::from_f32<T>(NAN);

  kc::DecodeAttentionParams<T> p;
  p.q = q.get();
  p.k_cache = k.get();
  p.v_cache = v.get();
  p.block_table = table.data();
  p.context_lens = c.lens.data();
  p.out = out.get();
  p.batch = B;
  p.heads = c.heads;
  p.kv_heads = c.kv_heads;
  p.head_dim = hd;
  p.block_tokens = bt;
  p.max_blocks_per_seq = max_blocks;
  p.max_context_len = max_ctx;
  p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  kc::DecodeSplit split = kc::plan_decode_split(B, c.heads, c.kv_heads, hd, max_ctx, 132);
  std::int64_t workspace_floats = split.workspace_floats;  // what the backend allocates: the plan's
  if (c.split.kind == SplitMode::kOnePass) {
    split = kc::DecodeSplit{};
    split.split_tokens = max_ctx;
    workspace_floats = 0;
  } else if (c.split.kind == SplitMode::kForced) {
    split.split_tokens = c.split.split_tokens;
    split.num_splits = std::max(2, (max_ctx + split.split_tokens - 1) / split.split_tokens);
    split.workspace_floats = static_cast<std::int64_t>(B) * c.heads * split.num_splits * (hd + 2);
    workspace_floats = split.workspace_floats;
  } else if (c.split.kind == SplitMode::kFitted) {
    const kc::DecodeSplit fit =
        kc::fit_decode_split_to_waves(split, B, c.heads, c.kv_heads, hd, max_ctx, c.split.wave_blocks);
    INFO("plan " << split.num_splits << " x " << split.split_tokens << " tokens");
    REQUIRE(fit.num_splits < split.num_splits);
    REQUIRE(fit.num_splits > 1);
    split = fit;
  }
  // Workspace: partial_acc (B, heads, splits, hd) | partial_max (B, heads, splits) | partial_sum (same).
  std::vector<float> ws(static_cast<std::size_t>(workspace_floats), NAN);
  p.partial_acc = workspace_floats > 0 ? ws.data() : nullptr;
  kc::set_decode_split(p, split);
  if (p.num_splits > 1) {
    REQUIRE(split.workspace_floats == static_cast<std::int64_t>(B) * c.heads * p.num_splits * (hd + 2));
    REQUIRE(split.workspace_floats <= workspace_floats);
    const long long bhs = static_cast<long long>(B) * c.heads * p.num_splits;
    CHECK(p.partial_max == ws.data() + bhs * hd);
    CHECK(p.partial_sum == p.partial_max + bhs);
  }
  INFO(describe(c, p.num_splits, p.split_tokens, sizeof(T)));

  const std::vector<double> ref = pdsim::kernels::ref::decode_attention(qf, kf, vf, table, c.lens, c.heads,
                                                                        c.kv_heads, hd, bt, max_blocks);
  // Each variant that applies, on poisoned outputs.
  const int group = c.heads / c.kv_heads;
  std::vector<Variant> variants;
  if (group <= 8) {  // the register kernel holds at most 8 rows
    variants.push_back(Variant::kRegs);
    if (dr::scatter_applies<T>(hd, group)) variants.push_back(Variant::kRegsScatter);
  }
  if (mma_applies<T>(hd, group)) {
    variants.push_back(Variant::kMma);
    variants.push_back(Variant::kMma2);
  }
  REQUIRE(!variants.empty());
  for (const Variant variant : variants) {
    INFO(variant_name(variant));
    for (std::size_t i = 0; i < q_n; ++i) out.get()[i] = kc::from_f32<T>(NAN);
    std::fill(ws.begin(), ws.end(), NAN);
    emu::Device dev;
    dev.allow_reads(q.get(), q.bytes());
    dev.allow_reads(k.get(), k.bytes());
    dev.allow_reads(v.get(), v.bytes());
    const bool ok = launch_decode(dev, p, variant);
    INFO("emulator: " << dev.error());
    REQUIRE(ok);
    // K and V each: one 16-byte load per vector of every context token and kv
    // head; the tensor-core kernel also copies q's group rows once per block
    // that has tokens (the register kernel's q reads are not counted).
    long long q_loads = 0;
    if (variant == Variant::kMma || variant == Variant::kMma2)
      for (int len : c.lens) {
        const long long blocks = p.num_splits == 1 ? (len > 0) : (len + p.split_tokens - 1) / p.split_tokens;
        q_loads += blocks * c.kv_heads * group * (hd / E);
      }
    CHECK(dev.loads() == 2 * (hd / E) * static_cast<long long>(c.kv_heads) * total_tokens + q_loads);

    const bool f32 = sizeof(T) == 4;
    const double atol = f32 ? 2e-4 : 1e-2, rtol = f32 ? 1e-3 : 2e-2;
    std::size_t bad = 0, first_bad = 0;
    double worst = 0;
    for (std::size_t i = 0; i < q_n; ++i) {
      const double got = to_float(out.get()[i]), err = std::fabs(got - ref[i]);
      if (!(err <= atol + rtol * std::fabs(ref[i]))) {  // NaN (unwritten) fails too
        if (bad++ == 0) first_bad = i;
      }
      if (!(err <= worst)) worst = err;
    }
    INFO("worst abs err " << worst << "; first bad element " << first_bad << " (b " << first_bad / (c.heads * hd)
                          << " h " << first_bad / hd % c.heads << " d " << first_bad % hd << ")");
    CHECK(bad == 0);
  }
}

}  // namespace

// Ragged contexts (0, 1, 31, 33: either side of a 32-token tile and of the
// kernel's token steps; long ones that the plan splits, so shorter sequences
// get empty splits), GQA groups in each row bucket (1; 2, 3, 4 -> 4 rows; 5,
// 7, 8 -> 8 rows), bf16 and f32, the launcher's plan, one pass, forced splits.
TEST_CASE("cuda kernels emulated: register decode attention matches the float64 reference over ragged paged batches") {
  std::mt19937 rng(1234);
  const std::vector<int> ragged = {1, 5, 31, 33, 100, 1000, 0, 3000};
  for (int group : {1, 4, 8}) {
    check_case<bf16>({group * 2, 2, 128, 16, ragged, kPlan}, rng);        // 11 splits of 288 tokens
    check_case<bf16>({group * 2, 2, 128, 16, ragged, forced(256)}, rng);  // 12 splits of 256
    check_case<float>({group * 2, 2, 64, 16, ragged, kPlan}, rng);
    check_case<float>({group * 2, 2, 64, 16, ragged, forced(96)}, rng);   // 32 splits, most of them empty
  }
  check_case<bf16>({4, 2, 128, 16, ragged, kOnePass}, rng);             // group 2 in 4 rows, 3000 tokens in one pass
  check_case<float>({14, 2, 128, 16, ragged, kOnePass}, rng);           // group 7 in 8 rows, f32 TG 32
  check_case<bf16>({14, 2, 64, 16, {2500, 7}, kPlan}, rng);             // group 7, split
  check_case<bf16>({10, 2, 64, 16, {1300, 7}, kPlan}, rng);             // group 5, split
  check_case<bf16>({6, 2, 96, 16, {300, 17, 0}, kPlan}, rng);           // group 3 (12 vectors: TG 16, 4 lanes idle)
  check_case<bf16>({6, 2, 96, 16, {300, 17, 0}, forced(64)}, rng);
  check_case<bf16>({32, 8, 128, 16, {2048, 2048, 2048, 2048}, kPlan}, rng);  // llama-3.1-8b: 8 splits of 256
  check_case<bf16>({8, 2, 128, 16, {4000}, kPlan, 8.0}, rng);           // peaked softmax: large scores, rescales
  // The plan fitted to the waves of a tiny device, in the plan's workspace: 2 sequences x 2 kv heads x 4
  // splits of 256 = 16 blocks in waves of 3 -> 3 splits of 352 (12 blocks); 4 kv heads x 11 splits of 288 =
  // 44 blocks in waves of 7 -> 7 splits of 448 (28 blocks).
  check_case<bf16>({8, 2, 128, 16, {1000, 999}, fitted(3)}, rng);
  check_case<float>({16, 2, 64, 16, {1000, 33}, fitted(3)}, rng);
  check_case<bf16>({8, 4, 128, 16, {3000}, fitted(7)}, rng);
}

// Head dims that leave lanes of a token group idle or take two vectors per
// lane, and KV blocks of 8 and 32 tokens (a token step spans several blocks).
TEST_CASE("cuda kernels emulated: register decode attention over head dims with idle lanes and block sizes 8 16 32") {
  std::mt19937 rng(99);
  // f32: 9 vectors (TG 16, 7 lanes idle), 24 (TG 32), 32, 50 and 64 (TG 32, 2 per lane).
  for (int hd : {36, 96, 128, 200, 256}) check_case<float>({4, 1, hd, 16, {1, 31, 300}, forced(64)}, rng);
  check_case<float>({8, 1, 256, 16, {1000, 40}, kOnePass}, rng);       // f32 2 vectors per lane, group 8
  for (int hd : {64, 96, 256}) {                                        // bf16: 8, 12 (TG 16), 32 vectors (TG 32)
    check_case<bf16>({8, 1, hd, 16, {1, 33, 1000}, kPlan}, rng);
    check_case<bf16>({8, 1, hd, 16, {1, 33, 1000}, forced(128)}, rng);
  }
  check_case<bf16>({5, 1, 40, 16, {257, 1}, kPlan}, rng);              // hd 40: 5 vectors, TG 8; group 5
  check_case<bf16>({2, 1, 16, 8, {45, 3, 0}, kPlan}, rng);             // hd 16: 2 vectors, TG 4; 8-token blocks
  check_case<bf16>({4, 1, 32, 8, {300, 9}, forced(32)}, rng);          // hd 32: 4 vectors, TG 4; 32-token splits
  check_case<bf16>({16, 2, 64, 32, {3000, 5}, kPlan}, rng);            // 32-token blocks, group 8
  check_case<float>({8, 8, 32, 8, {130, 64}, forced(32)}, rng);        // MHA, f32 hd 32, 8-token blocks
}

// The tensor-core kernel alone: groups of 9-16 query heads (rows the
// register kernel cannot hold; 16 fills the m16 tile), contexts either side of
// its 16-token warp slices and 64-token tiles, more tiles than pipeline stages,
// 8- and 32-token KV blocks, a peaked softmax. (Groups up to 8 run it in the
// cases above, beside the register kernel.)
TEST_CASE("cuda kernels emulated: tensor-core decode attention over groups of up to 16 query heads") {
  std::mt19937 rng(4242);
  check_case<bf16>({32, 2, 128, 16, {1, 15, 16, 17, 63, 64, 65, 0, 700}, kPlan}, rng);  // group 16
  check_case<bf16>({32, 2, 128, 16, {1, 15, 16, 17, 63, 64, 65, 0, 700}, forced(96)}, rng);
  check_case<bf16>({24, 2, 64, 8, {129, 191, 2}, kOnePass}, rng);                       // group 12, hd 64
  check_case<bf16>({9, 1, 64, 32, {1500, 40}, kPlan}, rng);                              // group 9, 32-token blocks
  check_case<bf16>({16, 1, 128, 16, {2000}, kPlan, 8.0}, rng);                           // peaked softmax
  // Shared memory per block: 3 stages, 2, or none fits (the launcher then says why).
  int stages = 0;
  auto record = [&](auto cfg) { stages = decltype(cfg)::NST; };
  CHECK(dm::dispatch(128, 227 * 1024, record));
  CHECK(stages == 3);
  CHECK(dm::dispatch(128, 99 * 1024, record));  // an L40's limit
  CHECK(stages == 2);
  CHECK(dm::dispatch(64, 40 * 1024, record));
  CHECK(stages == 2);
  CHECK_FALSE(dm::dispatch(128, 64 * 1024, record));
}

// The scattered reduction's maps: the lane that owns a row holds that row
// (scatter_own_row inverts scatter_lane_of_row), every row has exactly one
// owner lane with the low bits clear, and the lanes that share a row differ
// only in the offsets left for the final all-reduce.
TEST_CASE("cuda kernels emulated: the scattered score reduction gives every row one owner lane") {
  auto check = [](auto gb, auto tg) {
    constexpr int GB = decltype(gb)::value, TG = decltype(tg)::value;
    INFO("GB=" << GB << " TG=" << TG);
    std::vector<int> owners(GB, 0);
    for (int r = 0; r < GB; ++r) {
      const int lane = dr::scatter_lane_of_row<GB, TG>(r);
      CHECK(lane >= 0);
      CHECK(lane < TG);
      CHECK(lane % (TG / GB) == 0);
      CHECK(dr::scatter_own_row<GB, TG>(lane) == r);
    }
    for (int lig = 0; lig < TG; ++lig) {
      const int r = dr::scatter_own_row<GB, TG>(lig);
      REQUIRE(r >= 0);
      REQUIRE(r < GB);
      ++owners[r];
      CHECK(lig - lig % (TG / GB) == dr::scatter_lane_of_row<GB, TG>(r));
    }
    for (int n : owners) CHECK(n == TG / GB);
  };
  check(std::integral_constant<int, 8>{}, std::integral_constant<int, 8>{});
  check(std::integral_constant<int, 8>{}, std::integral_constant<int, 16>{});
  check(std::integral_constant<int, 8>{}, std::integral_constant<int, 32>{});
  check(std::integral_constant<int, 4>{}, std::integral_constant<int, 16>{});
}
