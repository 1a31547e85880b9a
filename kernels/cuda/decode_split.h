// How decode attention splits the context (flash-decoding): plain host C++ with
// no CUDA headers, so the launcher (attention.cu, cuda_backend.cu) and the host
// emulator test of the decode kernels (tests/emu/) run the same plan.
#pragma once
#include <algorithm>
#include <cstdint>

namespace pdsim::kernels::cuda {

// How decode attention splits the context; partial workspace floats needed.
struct DecodeSplit {
  int num_splits = 1;
  int split_tokens = 0;            // multiple of the 32-token tile
  std::int64_t workspace_floats = 0;  // (batch, heads, num_splits, head_dim + 2) when num_splits > 1
};

// The shortest split plan_decode_split makes by default (a multiple of 32).
// On an H100 (2026-11-25) a block's 256 tokens take ~20-30 us at small
// batches, where too few blocks run (batch 1 x 1024 tokens: 32 blocks), so
// the CUDA backend lets PDSIM_DECODE_MIN_SPLIT override it for measurement.
constexpr int kDefaultMinSplitTokens = 256;

constexpr int kDecodeSplitTile = 32;  // split lengths are whole 32-token tiles (the shared-memory kernel's)

// The context of max_context_len tokens cut into about `splits` splits of
// whole tiles (fewer when the tiles do not divide evenly: no empty split at
// max_context_len), and their workspace. REQUIRES: splits >= 1.
inline DecodeSplit decode_split_into(int batch, int heads, int head_dim, int max_context_len, long long splits) {
  DecodeSplit s;
  const int tiles = std::max(1, (max_context_len + kDecodeSplitTile - 1) / kDecodeSplitTile);
  const int tiles_per_split = static_cast<int>((tiles + splits - 1) / splits);
  s.split_tokens = tiles_per_split * kDecodeSplitTile;
  s.num_splits = std::max(1, (max_context_len + s.split_tokens - 1) / s.split_tokens);
  if (s.num_splits > 1)
    s.workspace_floats = static_cast<std::int64_t>(batch) * heads * s.num_splits * (head_dim + 2);
  return s;
}

// Splits for the register kernel (the shared-memory one runs the same plan):
// batch * kv_heads * num_splits blocks should give every SM ~12 blocks (a few
// waves at the ~3 resident blocks per SM of the G = 8 kernel, so the last wave
// is short), but no split shorter than min_split_tokens (a block's fixed cost:
// q load, merge, partial write, pass 2). Contexts of at most min_split_tokens,
// or batches that already fill the GPU, run one pass without a workspace.
// REQUIRES: min_split_tokens a positive multiple of 32.
inline DecodeSplit plan_decode_split(int batch, int heads, int kv_heads, int head_dim, int max_context_len,
                                     int sm_count, int min_split_tokens = kDefaultMinSplitTokens) {
  constexpr int kTile = kDecodeSplitTile;
  const int kMinSplitTokens = min_split_tokens;
  constexpr long long kBlocksPerSm = 12;
  const long long base = static_cast<long long>(batch) * kv_heads;
  if (max_context_len <= kMinSplitTokens || base <= 0)  // one pass, no workspace
    return decode_split_into(batch, heads, head_dim, max_context_len, 1);
  const int tiles = (max_context_len + kTile - 1) / kTile;
  const long long target = kBlocksPerSm * (sm_count > 0 ? sm_count : 100);
  // Nearest whole number of splits to target / base (1 when base alone is close to the target).
  const long long want = (target + base / 2) / base;
  const long long splits = std::max(1LL, std::min(want, static_cast<long long>(tiles / (kMinSplitTokens / kTile))));
  return decode_split_into(batch, heads, head_dim, max_context_len, splits);
}

// The plan's blocks run in waves of wave_blocks (the pass-1 kernel's resident
// blocks per SM x SMs); plan_decode_split's ~12 blocks per SM do not know how
// many are resident, so its block count can end one block-time past a whole
// wave with the last wave nearly empty: on an H200 (2026-12-04) the
// tensor-core kernel (2 blocks per SM) at batch 8 x 32768 tokens ran 1600
// blocks, 6 waves of 264 and 16 more, at 0.66-0.67 of the copy bandwidth
// where the other 256k shapes (1536-2048 blocks) reached 0.71-0.76. This
// lowers the split count to the most splits, between half the plan's and the
// plan's, whose time in wave units (waves x tiles per split) is within 2% of
// the best there: fewer, longer splits only, so the plan's workspace still
// holds it and no split gets shorter than the plan's minimum. wave_blocks <= 0
// or one split: the plan unchanged.
inline DecodeSplit fit_decode_split_to_waves(const DecodeSplit& plan, int batch, int heads, int kv_heads,
                                             int head_dim, int max_context_len, long long wave_blocks) {
  if (wave_blocks <= 0 || plan.num_splits <= 1) return plan;
  const long long base = static_cast<long long>(batch) * kv_heads;
  auto with_splits = [&](int splits) { return decode_split_into(batch, heads, head_dim, max_context_len, splits); };
  auto wave_time = [&](const DecodeSplit& s) {  // waves x tiles per split
    return static_cast<double>((base * s.num_splits + wave_blocks - 1) / wave_blocks) *
           (s.split_tokens / kDecodeSplitTile);
  };
  double best = wave_time(plan);
  for (int n = (plan.num_splits + 1) / 2; n < plan.num_splits; ++n) best = std::min(best, wave_time(with_splits(n)));
  if (wave_time(plan) <= 1.02 * best) return plan;
  for (int n = plan.num_splits - 1; n >= 1; --n) {
    const DecodeSplit s = with_splits(n);
    if (wave_time(s) <= 1.02 * best) return s;
  }
  return plan;
}

// Puts `split` into decode params `p` (DecodeAttentionParams<T>) and lays its
// workspace out from p.partial_acc: (batch, heads, splits) x head_dim partial
// accumulators, then the maxima, then the sums, as decode_reduce_kernel reads
// them. The backend's allocation for a plan holds any fit of it (fewer splits).
template <class Params>
void set_decode_split(Params& p, const DecodeSplit& split) {
  p.num_splits = split.num_splits;
  p.split_tokens = split.split_tokens;
  if (split.num_splits <= 1 || p.partial_acc == nullptr) return;
  const long long bhs = static_cast<long long>(p.batch) * p.heads * split.num_splits;
  p.partial_max = p.partial_acc + bhs * p.head_dim;
  p.partial_sum = p.partial_max + bhs;
}

}  // namespace pdsim::kernels::cuda
