// Host stand-in for <cuda_runtime.h> (tests/emu only): just enough of the CUDA
// device API for kernels written in plain CUDA C++ (no inline PTX) to compile
// as host C++ and run on emu::Device (emu_device.h), which runs each thread of
// a block as a fiber. tests/emu/fake_cuda comes first on the emulator test's
// include path, so the real kernel headers (kernels/cuda/*.cuh) include this.
//
// What the kernels see: threadIdx / blockIdx / blockDim / gridDim (set by the
// emulator for the running thread), __syncthreads (a block barrier),
// __shfl_sync / __shfl_xor_sync / __any_sync (a warp exchange that checks every
// lane of the warp takes part), __ldg (checks 16-byte alignment and, where the test
// registered its buffers, that the load stays inside one), the fp32 intrinsics
// as libm calls. __shared__ variables become function statics: blocks run one
// at a time, so one copy per kernel instantiation is one block's shared memory
// (not re-poisoned between blocks); dynamic shared memory (declared with
// PDSIM_DYNAMIC_SHARED) is the emulator's buffer, poisoned before each block.
// The inline-PTX primitives of kernels/cuda/mma_sm80.cuh (ldmatrix, mma.sync,
// cp.async) come as host functions from emu_mma_sm80.h, included at the end.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "emu_device.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

using cudaStream_t = struct CUstream_st*;

struct uint4 {
  unsigned x, y, z, w;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return {a, b, c, d}; }

inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline unsigned __float_as_uint(float f) {
  unsigned u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Plain vector accesses the kernels mark (kernels/cuda/ops.cuh): alignment checked.
#define PDSIM_CHECK_ALIGNED(p, align) emu::Device::current().check_aligned((p), (align))

// A load the emulator refuses (misaligned, outside the registered buffers) is
// recorded as the launch's error and reads zeros instead of the memory.
inline uint4 __ldg(const uint4* p) {
  uint4 v{0u, 0u, 0u, 0u};
  if (emu::Device::current().check_load(p, sizeof(uint4), 16)) std::memcpy(&v, p, sizeof v);
  return v;
}

// Dynamic shared memory (PDSIM_DYNAMIC_SHARED, kernels/cuda/ops.cuh): the
// emulator's per-launch buffer, sized by Device::launch's last argument.
#define PDSIM_DYNAMIC_SHARED(type, name) type* const name = static_cast<type*>(emu::Device::current().dynamic_shared())

inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }

inline void __syncthreads() { emu::Device::current().sync_block(); }

template <class V>
V __shfl_sync(unsigned mask, V v, int src_lane) {
  static_assert(sizeof(V) <= 8, "one 64-bit exchange slot per lane");
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(V));
  bits = emu::Device::current().exchange(mask, bits, src_lane);
  V out;
  std::memcpy(&out, &bits, sizeof(V));
  return out;
}
template <class V>
V __shfl_xor_sync(unsigned mask, V v, int lane_mask) {
  return __shfl_sync(mask, v, static_cast<int>(threadIdx.x % 32) ^ lane_mask);
}
// A butterfly of exchanges: the same warp-wide OR, with the same every-lane check.
inline int __any_sync(unsigned mask, int predicate) {
  unsigned any = predicate != 0;
  for (int offset = 16; offset > 0; offset >>= 1) any |= __shfl_xor_sync(mask, any, offset);
  return any != 0;
}

using std::max;
using std::min;

// The sm_80 tensor-core and cp.async primitives (kernels/cuda/mma_sm80.cuh) as host code.
#include "emu_mma_sm80.h"
