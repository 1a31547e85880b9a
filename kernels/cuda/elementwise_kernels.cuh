// Row-wise and elementwise kernels of the CUDA backend (device code, and the
// grid their launchers in elementwise.cu use): RMSNorm (with the residual add
// fused in or without), RoPE (rotate-half), SiLU-gate, KV append into the
// paged cache, random fill.
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

// --------------------------------------------------------- 16-byte vectors ---
// The vectorized kernels move 16 bytes per access (8 bf16 or 4 floats), as the
// copy bandwidth is measured; they need every row start 16-byte aligned (the
// launchers ask the *_vectorizable / rmsnorm_vecs_per_thread predicates below,
// else they run the scalar kernels). With 2-byte accesses the SiLU-gate and
// norms reached ~50% of the copy bandwidth on an H100
// (profiles/measured/h100-sxm-pdsim, 2026-11-25).
template <class T>
constexpr int kVec = 16 / static_cast<int>(sizeof(T));

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// A load and its conversion apart: a kernel that issues several loads before
// converting any keeps them all in flight (a conversion right after its load
// waits for the data, and a branch between loads keeps the compiler from
// hoisting the next one above it).
template <class T>
__device__ __forceinline__ uint4 load16_raw(const T* p) {
  PDSIM_CHECK_ALIGNED(p, 16);
  return *reinterpret_cast<const uint4*>(p);
}
template <class T>
__device__ __forceinline__ void unpack16(const uint4& raw, float (&f)[kVec<T>]) {
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int j = 0; j < kVec<T>; ++j) f[j] = to_f32(e[j]);
}
template <class T>
__device__ __forceinline__ void load16(const T* p, float (&f)[kVec<T>]) {
  unpack16<T>(load16_raw(p), f);
}

template <class T>
__device__ __forceinline__ void store16(T* p, const float (&f)[kVec<T>]) {
  uint4 raw;
  T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
  for (int j = 0; j < kVec<T>; ++j) e[j] = from_f32<T>(f[j]);
  PDSIM_CHECK_ALIGNED(p, 16);
  *reinterpret_cast<uint4*>(p) = raw;
}

// ---------------------------------------------------------------- RMSNorm ---
// Grid (rows); block kThreads. x, out (and residual) are (rows, hidden);
// weight is (hidden). out[r, :] = x[r, :] * rsqrt(mean(x[r, :]^2) + eps) *
// weight, all in fp32. With p.residual set (the residual add fused into the
// norm, as vLLM's fused_add_rms_norm): residual[r, :] += x[r, :], stored, and
// that stored (rounded) sum is what is normalized, so the result is the
// unfused add-then-norm's, with one kernel and one read of each row.

// The sum as the residual stream stores it.
template <class T>
__device__ __forceinline__ float stored(float v) {
  return to_f32(from_f32<T>(v));
}

// 1 / rms of a row from each thread's partial sum of squares (whole block).
__device__ __forceinline__ float block_inv_rms(float ss, int hidden, float eps) {
  __shared__ float warp_sums[kThreads / 32];
  __shared__ float inv_rms;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = ss;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.f;
    for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
    inv_rms = rsqrtf(total / static_cast<float>(hidden) + eps);
  }
  __syncthreads();
  return inv_rms;
}

// Any shape and alignment: 2- or 4-byte accesses, the row read twice (each
// thread reads back only the elements it wrote).
template <class T>
__global__ void __launch_bounds__(kThreads) rmsnorm_kernel(RmsNormParams<T> p) {
  const long long r = blockIdx.x;
  const T* x = p.x + r * p.hidden;
  T* res = p.residual ? p.residual + r * p.hidden : nullptr;
  T* o = p.out + r * p.hidden;
  float ss = 0.f;
  for (int d = threadIdx.x; d < p.hidden; d += blockDim.x) {
    float v = to_f32(x[d]);
    if (res) {
      v = stored<T>(v + to_f32(res[d]));
      res[d] = from_f32<T>(v);
    }
    ss = fmaf(v, v, ss);
  }
  const float s = block_inv_rms(ss, p.hidden, p.eps);
  const T* in = res ? res : x;
  for (int d = threadIdx.x; d < p.hidden; d += blockDim.x) o[d] = from_f32<T>(to_f32(in[d]) * s * to_f32(p.weight[d]));
}

// The row held in registers, kVecs 16-byte vectors per thread, all loaded
// before the reduction: one row costs one memory round trip and x (and the
// residual) is read once. (The scalar kernel's loop of dependent 2-byte loads
// took ~10-20 us per norm for a decode step's few rows on an H100, 35-55 us
// per layer for the two norms and two then separate adds; vLLM's are ~10-14
// us, vidur-profiling h100 mlp.csv.)
template <class T, int kVecs>
__global__ void __launch_bounds__(kThreads) rmsnorm_vec_kernel(RmsNormParams<T> p) {
  constexpr int V = kVec<T>;
  const int nvec = p.hidden / V;
  const long long r = blockIdx.x;
  const T* x = p.x + r * p.hidden;
  T* res = p.residual ? p.residual + r * p.hidden : nullptr;
  T* o = p.out + r * p.hidden;
  uint4 x_raw[kVecs] = {}, res_raw[kVecs] = {};
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {  // every load issued before any is used
    const int c = static_cast<int>(threadIdx.x) + i * kThreads;
    if (c < nvec) {
      x_raw[i] = load16_raw(x + c * V);
      if (res) res_raw[i] = load16_raw(res + c * V);
    }
  }
  float v[kVecs][V];
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
    const int c = static_cast<int>(threadIdx.x) + i * kThreads;
    if (c < nvec) {
      unpack16<T>(x_raw[i], v[i]);
      if (res) {
        float add[V];
        unpack16<T>(res_raw[i], add);
#pragma unroll
        for (int j = 0; j < V; ++j) v[i][j] = stored<T>(v[i][j] + add[j]);
      }
    } else {
#pragma unroll
      for (int j = 0; j < V; ++j) v[i][j] = 0.f;
    }
  }
  if (res) {  // stored after every load above is issued
#pragma unroll
    for (int i = 0; i < kVecs; ++i) {
      const int c = static_cast<int>(threadIdx.x) + i * kThreads;
      if (c < nvec) store16(res + c * V, v[i]);
    }
  }
  float ss = 0.f;
#pragma unroll
  for (int i = 0; i < kVecs; ++i)
#pragma unroll
    for (int j = 0; j < V; ++j) ss = fmaf(v[i][j], v[i][j], ss);
  const float s = block_inv_rms(ss, p.hidden, p.eps);
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
    const int c = static_cast<int>(threadIdx.x) + i * kThreads;
    if (c < nvec) {
      float w[V];
      load16(p.weight + c * V, w);
#pragma unroll
      for (int j = 0; j < V; ++j) w[j] *= v[i][j] * s;
      store16(o + c * V, w);
    }
  }
}

// The most 16-byte vectors per thread the register kernel is built for
// (hidden <= 8 x 256 x 8 = 16384 in bf16; wider rows run the scalar kernel).
constexpr int kRmsNormMaxVecs = 8;

// Vectors per thread for rmsnorm_vec_kernel (1, 2, 4 or 8), or 0: the scalar kernel.
template <class T>
inline int rmsnorm_vecs_per_thread(const RmsNormParams<T>& p) {
  if (p.hidden % kVec<T> != 0 || !aligned16(p.x) || !aligned16(p.weight) || !aligned16(p.out) ||
      (p.residual && !aligned16(p.residual)))
    return 0;
  const int nvec = p.hidden / kVec<T>;
  for (int vecs = 1; vecs <= kRmsNormMaxVecs; vecs *= 2)
    if (nvec <= vecs * kThreads) return vecs;
  return 0;
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
__device__ __forceinline__ float silu_mul(float g, float u) { return g / (1.f + expf(-g)) * u; }

template <class T>
__global__ void __launch_bounds__(kThreads) silu_gate_kernel(SiluGateParams<T> p) {
  const long long n = p.rows * p.ffn;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long r = idx / p.ffn, f = idx % p.ffn;
    const T* row = p.gate_up + r * 2 * p.ffn;
    p.out[idx] = from_f32<T>(silu_mul(to_f32(row[f]), to_f32(row[p.ffn + f])));
  }
}

// One 16-byte vector of out per item (ffn a multiple of kVec<T>).
template <class T>
__global__ void __launch_bounds__(kThreads) silu_gate_vec_kernel(SiluGateParams<T> p) {
  constexpr int V = kVec<T>;
  const long long fv = p.ffn / V, n = p.rows * fv;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long r = idx / fv, f = (idx % fv) * V;
    const T* row = p.gate_up + r * 2 * p.ffn;
    float g[V], u[V];
    load16(row + f, g);
    load16(row + p.ffn + f, u);
#pragma unroll
    for (int j = 0; j < V; ++j) g[j] = silu_mul(g[j], u[j]);
    store16(p.out + idx * V, g);
  }
}

template <class T>
inline bool silu_gate_vectorizable(const SiluGateParams<T>& p) {
  return p.ffn % kVec<T> == 0 && aligned16(p.gate_up) && aligned16(p.out);
}

// -------------------------------------------------------------- KV append ---
// k, v are (T, kv_heads, hd); the caches are (slots, kv_heads, hd) with
// slot = block * block_tokens + offset; slot_mapping[t] < 0 skips token t
// (padding). Plain copy, no conversion. kVectorized: 16-byte items (a row of
// kv_heads x hd a multiple of kVec<T>, every pointer 16-byte aligned).
template <class T, bool kVectorized = false>
__global__ void __launch_bounds__(kThreads) kv_append_kernel(KvAppendParams<T> p) {
  constexpr int V = kVectorized ? kVec<T> : 1;
  const long long row = static_cast<long long>(p.kv_heads) * p.head_dim / V;  // items per token
  const long long n = p.tokens * row;
  if constexpr (kVectorized) {  // whole uint4s from these bases: aligned if they are
    PDSIM_CHECK_ALIGNED(p.k_cache, 16);
    PDSIM_CHECK_ALIGNED(p.v_cache, 16);
    PDSIM_CHECK_ALIGNED(p.k, 16);
    PDSIM_CHECK_ALIGNED(p.v, 16);
  }
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long t = idx / row, e = idx % row;
    const long long slot = p.slot_mapping[t];
    if (slot < 0) continue;
    if constexpr (kVectorized) {
      reinterpret_cast<uint4*>(p.k_cache)[slot * row + e] = reinterpret_cast<const uint4*>(p.k)[idx];
      reinterpret_cast<uint4*>(p.v_cache)[slot * row + e] = reinterpret_cast<const uint4*>(p.v)[idx];
    } else {
      p.k_cache[slot * row + e] = p.k[idx];
      p.v_cache[slot * row + e] = p.v[idx];
    }
  }
}

template <class T>
inline bool kv_append_vectorizable(const KvAppendParams<T>& p) {
  return (static_cast<long long>(p.kv_heads) * p.head_dim) % kVec<T> == 0 && aligned16(p.k) && aligned16(p.v) &&
         aligned16(p.k_cache) && aligned16(p.v_cache);
}

// Items (grid-stride units) of kv_append_kernel<T, vectorized>.
template <class T>
inline long long kv_append_items(const KvAppendParams<T>& p, bool vectorized) {
  return p.tokens * p.kv_heads * p.head_dim / (vectorized ? kVec<T> : 1);
}

// ------------------------------------------------------------ random fill ---
template <class T>
__global__ void __launch_bounds__(kThreads) fill_random_kernel(T* out, long long n, float scale, std::uint32_t seed) {
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<long long>(gridDim.x) * blockDim.x)
    out[idx] = from_f32<T>(random_fill_value(seed, static_cast<std::uint64_t>(idx), scale));
}

}  // namespace pdsim::kernels::cuda::elementwise
