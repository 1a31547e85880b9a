// Pass 2 of split decode attention (flash-decoding merge), shared by both
// decode kernels' launchers in attention.cu. Plain CUDA C++ (no inline PTX), so
// the host emulator test (tests/emu/) runs this same code after the emulated
// register kernel.
#pragma once
#include "kernels/cuda/ops.cuh"

namespace pdsim::kernels::cuda {

// Grid (batch * heads), any block size; merges the splits of one (b, h):
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
