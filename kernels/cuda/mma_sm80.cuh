// The sm_80 warp-level tensor-core and async-copy primitives the mma.sync
// kernels share (prefill_attention_mma.cuh, decode_attention_mma.cuh): inline
// PTX wrappers, one place. tests/emu's fake CUDA headers define
// PDSIM_EMU_MMA_SM80 and host versions of the same functions (a warp-wide
// all-gather per ldmatrix / mma, cp.async landing at its wait_group and
// race-checked against ldmatrix), so these kernels also run on the host emulator.
//
// Fragment layouts of mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// (PTX ISA, "Matrix fragments for mma.m16n8k16"), g = lane / 4, t = lane % 4,
// each .b32 register holds 2 bf16 with the lower column (or k) index in the low half:
//   A (16 x 16, row-major) a0: (g, 2t..2t+1)  a1: (g+8, 2t..)  a2: (g, 2t+8..)  a3: (g+8, 2t+8..)
//   B (16 x 8, k x n)      b0: (k 2t..2t+1, n g)   b1: (k 2t+8..2t+9, n g)
//   C (16 x 8, fp32)       c0, c1: (g, 2t, 2t+1)   c2, c3: (g+8, 2t, 2t+1)
// ldmatrix.x4: lanes 8i..8i+7 give the row addresses of 8x8 matrix i, which
// lands in register i with lane holding (row g, cols 2t, 2t+1); with .trans
// the lane holds (rows 2t, 2t+1, col g) of the stored matrix instead.
// So: C of two adjacent key n-tiles == A of one 16-key k-step (FA2's register
// reuse); K stored [key][d] is B of S = Q K^T without transpose; V stored
// [key][d] is B of O += P V with .trans.
#pragma once
#include <cstdint>

#include "kernels/cuda/ops.cuh"

namespace pdsim::kernels::cuda {

#ifndef PDSIM_EMU_MMA_SM80
__device__ __forceinline__ std::uint32_t smem_addr(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}
// 16 bytes global -> shared, asynchronous; src_bytes == 0 writes 16 zero bytes (src is not read).
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)),
               "l"(__cvta_generic_to_global(src)), "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are pending; a
// __syncthreads must follow before other threads' copies are read.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() { cp_async_wait<0>(); }

__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(std::uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
// c (16x8 fp32) += a (16x16 bf16) . b (16x8 bf16)
__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                               std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// Two floats -> one .b32 of two bf16 (round to nearest), lo in the low half.
__device__ __forceinline__ std::uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const std::uint32_t*>(&v);
}
#endif  // PDSIM_EMU_MMA_SM80

}  // namespace pdsim::kernels::cuda
