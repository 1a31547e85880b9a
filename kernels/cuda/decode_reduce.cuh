// Pass 2 of split decode attention (flash-decoding merge), shared by both
// decode kernels' launchers in attention.cu, and the empty-split partial of
// pass 1 that it skips. Plain CUDA C++ (no inline PTX), so
// the host emulator test (tests/emu/) runs this same code after the emulated
// register kernel.
#pragma once
#include "kernels/cuda/ops.cuh"

namespace pdsim::kernels::cuda {

// The context tokens [begin, end) a decode block owns: split `split` of
// sequence b's context, or all of it when the context is not split. Both
// decode kernels start from it.
struct TokenRange {
  int begin, end;
};
template <class T>
__device__ __forceinline__ TokenRange decode_split_tokens(const DecodeAttentionParams<T>& p, int b, int split) {
  const int ctx = p.context_lens[b];
  if (p.num_splits <= 1) return {0, ctx};
  const int begin = split * p.split_tokens;
  return {begin, min(ctx, begin + p.split_tokens)};
}

// Pass 1's block for an empty split (or an empty context) of one (sequence b,
// kv head) owning query heads h0 .. h0 + group - 1: in split mode a neutral
// partial (max -inf, sum 0; the merge below skips it), else zero output rows.
// Both decode kernels call it, with the whole block.
template <class T>
__device__ __forceinline__ void write_empty_split(const DecodeAttentionParams<T>& p, int b, int h0, int group,
                                                  int split) {
  const bool split_mode = p.num_splits > 1;
  const int hd = p.head_dim;
  for (int i = threadIdx.x; i < group; i += blockDim.x) {
    const long long bh = static_cast<long long>(b) * p.heads + h0 + i;
    if (split_mode) {
      p.partial_max[bh * p.num_splits + split] = -INFINITY;
      p.partial_sum[bh * p.num_splits + split] = 0.f;
    }
  }
  if (!split_mode)
    for (int i = threadIdx.x; i < group * hd; i += blockDim.x)
      p.out[(static_cast<long long>(b) * p.heads + h0) * hd + i] = from_f32<T>(0.f);
}

// The end of pass 1, shared by the decode kernels: merges the W warps' online-
// softmax states of the group's rows and writes the block's result (split
// mode: the unnormalized partial and its (max, sum); else out = acc / sum).
// Warp w's state of row r is m = sM[w * rows + r], l = sL[w * rows + r] (the
// row's whole sum), acc[d] = sAcc[(w * rows + r) * ld + d]; a warp that saw no
// token has m == -inf and weighs 0 (the block saw at least one). Whole block,
// after a barrier that made the states visible.
template <int W, class T>
__device__ __forceinline__ void merge_warps_and_store(const DecodeAttentionParams<T>& p, int b, int h0, int group,
                                                      int split, const float* sM, const float* sL, const float* sAcc,
                                                      int rows, int ld) {
  const int hd = p.head_dim;
  for (int i = threadIdx.x; i < group * hd; i += blockDim.x) {
    const int r = i / hd, d = i % hd;
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < W; ++w) M = fmaxf(M, sM[w * rows + r]);
    float L = 0.f, A = 0.f;
#pragma unroll
    for (int w = 0; w < W; ++w) {
      const float mw = sM[w * rows + r];
      const float sw = mw == -INFINITY ? 0.f : exp2f(mw - M);
      L = fmaf(sL[w * rows + r], sw, L);
      A = fmaf(sAcc[(w * rows + r) * ld + d], sw, A);
    }
    const long long bh = static_cast<long long>(b) * p.heads + h0 + r;
    if (p.num_splits > 1) {
      // partial_acc (B, heads, splits, hd); partial_max/sum (B, heads, splits).
      const long long idx = bh * p.num_splits + split;
      p.partial_acc[idx * hd + d] = A;
      if (d == 0) {
        p.partial_max[idx] = M;
        p.partial_sum[idx] = L;
      }
    } else {
      p.out[bh * hd + d] = from_f32<T>(A / L);
    }
  }
}

// Pass 2. Grid (batch * heads), any block size; merges the splits of one (b, h):
// out = sum_s 2^(m_s - M) acc_s / sum_s 2^(m_s - M) l_s, skipping empty splits
// (m_s == -inf); a sequence whose splits are all empty gets zeros.
// partial_acc (B, heads, splits, hd); partial_max / partial_sum (B, heads, splits).
template <class T>
__global__ void decode_reduce_kernel(DecodeAttentionParams<T> p) {
  const long long bh = blockIdx.x;
  const int S = p.num_splits, hd = p.head_dim;
  const float* pm = p.partial_max + bh * S;
  const float* pl = p.partial_sum + bh * S;
  float M = -INFINITY;
  for (int s = 0; s < S; ++s) M = fmaxf(M, pm[s]);
  T* o = p.out + bh * hd;
  if (M == -INFINITY) {  // empty context
    for (int d = threadIdx.x; d < hd; d += blockDim.x) o[d] = from_f32<T>(0.f);
    return;
  }
  float L = 0.f;
  for (int s = 0; s < S; ++s)
    if (pm[s] != -INFINITY) L += exp2f(pm[s] - M) * pl[s];
  const float inv = 1.f / L;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float acc = 0.f;
    for (int s = 0; s < S; ++s)
      if (pm[s] != -INFINITY) acc += exp2f(pm[s] - M) * p.partial_acc[(bh * S + s) * hd + d];
    o[d] = from_f32<T>(acc * inv);
  }
}

}  // namespace pdsim::kernels::cuda
