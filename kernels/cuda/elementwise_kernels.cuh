// Row-wise and elementwise kernels of the CUDA backend (device code, and the
// grid their launchers in elementwise.cu use): RMSNorm, RoPE (rotate-half),
// SiLU-gate, KV append into the paged cache, residual add, random fill.
// Storage T (bf16 or f32), fp32 math (RoPE angles in fp64, see there).
//
// Plain CUDA C++ (no inline PTX), so the device code also compiles as host C++
// under the fake CUDA headers of tests/emu (fibers for threads), where a test
// checks it against the float64 references on every build, GPU or not.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/ops.cuh"
#include "kernels/random_fill.h"

namespace pdsim::kernels::cuda::elementwise {

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n items (capped; the loop covers the rest).
inline unsigned grid_for(long long n) {
  const long long blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::max(1LL, std::min(blocks, 65535LL * 16)));
}

// ---------------------------------------------------------------- RMSNorm ---
// Grid (rows); block kThreads. x, out are (rows, hidden); weight is (hidden).
// out[r, :] = x[r, :] * rsqrt(mean(x[r, :]^2) + eps) * weight, all in fp32.
template <class T>
__global__ void __launch_bounds__(kThreads) rmsnorm_kernel(RmsNormParams<T> p) {
  __shared__ float warp_sums[kThreads / 32];
  __shared__ float inv_rms;
  const long long r = blockIdx.x;
  const T* x = p.x + r * p.hidden;
  T* o = p.out + r * p.hidden;
  float ss = 0.f;
  for (int d = threadIdx.x; d < p.hidden; d += blockDim.x) {
    const float v = to_f32(x[d]);
    ss = fmaf(v, v, ss);
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = ss;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.f;
    for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
    inv_rms = rsqrtf(total / static_cast<float>(p.hidden) + p.eps);
  }
  __syncthreads();
  const float s = inv_rms;
  for (int d = threadIdx.x; d < p.hidden; d += blockDim.x) o[d] = from_f32<T>(to_f32(x[d]) * s * to_f32(p.weight[d]));
}

// ------------------------------------------------------------------- RoPE ---
// q is (T, heads, hd), k is (T, kv_heads, hd), positions (T). Rotate-half
// pairs (i, i + hd/2):
//   x1' = x1 cos(a) - x2 sin(a),  x2' = x2 cos(a) + x1 sin(a),
//   a = pos * theta^(-2i/hd).
// The angle is formed and reduced in fp64 (positions reach 1e5+ where an fp32
// angle loses ~1e-2 rad). One thread per (token t, chunk of kRopeHeads heads
// of q then k, pair i), grid-stride, i fastest (coalesced): it loads its
// chunk's pairs before storing any, so the loads overlap. (Until 2026-11-25 a
// thread took all heads of its (t, i) in turn; each head's loads waited for
// the previous head's stores, and a decode step's RoPE, a few tokens, took
// ~10-20 us on an H100 by latency alone, longer for models with more heads.)
constexpr int kRopeHeads = 8;
__host__ __device__ inline long long rope_items(long long tokens, int heads, int kv_heads, int head_dim) {
  return tokens * ((heads + kv_heads + kRopeHeads - 1) / kRopeHeads) * (head_dim / 2);
}

template <class T>
__global__ void __launch_bounds__(kThreads) rope_kernel(RopeParams<T> p) {
  const int half = p.head_dim / 2;
  const int all_heads = p.heads + p.kv_heads;
  const int chunks = (all_heads + kRopeHeads - 1) / kRopeHeads;
  const long long n = rope_items(p.tokens, p.heads, p.kv_heads, p.head_dim);
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(idx % half);
    const long long tc = idx / half;
    const int chunk = static_cast<int>(tc % chunks);
    const long long t = tc / chunks;
    const double inv_freq = pow(static_cast<double>(p.theta), -2.0 * i / p.head_dim);
    const double angle = static_cast<double>(p.positions[t]) * inv_freq;
    double sd, cd;
    sincos(angle, &sd, &cd);
    const float s = static_cast<float>(sd), c = static_cast<float>(cd);
    const int h0 = chunk * kRopeHeads;
    const int nh = all_heads - h0 < kRopeHeads ? all_heads - h0 : kRopeHeads;
    T* rows[kRopeHeads] = {};
    float x1[kRopeHeads] = {}, x2[kRopeHeads] = {};
#pragma unroll
    for (int j = 0; j < kRopeHeads; ++j)
      if (j < nh) {
        const int h = h0 + j;
        rows[j] = h < p.heads ? p.q + (t * p.heads + h) * p.head_dim
                              : p.k + (t * p.kv_heads + (h - p.heads)) * p.head_dim;
        x1[j] = to_f32(rows[j][i]);
        x2[j] = to_f32(rows[j][i + half]);
      }
#pragma unroll
    for (int j = 0; j < kRopeHeads; ++j)
      if (j < nh) {
        rows[j][i] = from_f32<T>(x1[j] * c - x2[j] * s);
        rows[j][i + half] = from_f32<T>(x2[j] * c + x1[j] * s);
      }
  }
}

// -------------------------------------------------------------- SiLU-gate ---
// gate_up is (rows, 2 * ffn), out is (rows, ffn): out = silu(gate) * up.
template <class T>
__global__ void __launch_bounds__(kThreads) silu_gate_kernel(SiluGateParams<T> p) {
  const long long n = p.rows * p.ffn;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long r = idx / p.ffn, f = idx % p.ffn;
    const T* row = p.gate_up + r * 2 * p.ffn;
    const float g = to_f32(row[f]), u = to_f32(row[p.ffn + f]);
    p.out[idx] = from_f32<T>(g / (1.f + expf(-g)) * u);
  }
}

// -------------------------------------------------------------- KV append ---
// k, v are (T, kv_heads, hd); the caches are (slots, kv_heads, hd) with
// slot = block * block_tokens + offset; slot_mapping[t] < 0 skips token t
// (padding). Plain copy, no conversion.
template <class T>
__global__ void __launch_bounds__(kThreads) kv_append_kernel(KvAppendParams<T> p) {
  const long long row = static_cast<long long>(p.kv_heads) * p.head_dim;
  const long long n = p.tokens * row;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long t = idx / row, e = idx % row;
    const long long slot = p.slot_mapping[t];
    if (slot < 0) continue;
    p.k_cache[slot * row + e] = p.k[idx];
    p.v_cache[slot * row + e] = p.v[idx];
  }
}

// ----------------------------------------------------------- residual add ---
template <class T>
__global__ void __launch_bounds__(kThreads) residual_add_kernel(T* x, const T* residual, long long n) {
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<long long>(gridDim.x) * blockDim.x)
    x[idx] = from_f32<T>(to_f32(x[idx]) + to_f32(residual[idx]));
}

// ------------------------------------------------------------ random fill ---
template <class T>
__global__ void __launch_bounds__(kThreads) fill_random_kernel(T* out, long long n, float scale, std::uint32_t seed) {
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<long long>(gridDim.x) * blockDim.x)
    out[idx] = from_f32<T>(random_fill_value(seed, static_cast<std::uint64_t>(idx), scale));
}

}  // namespace pdsim::kernels::cuda::elementwise
