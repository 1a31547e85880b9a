// Host versions of kernels/cuda/mma_sm80.cuh (tests/emu only; the fake
// cuda_runtime.h includes this, and defining PDSIM_EMU_MMA_SM80 turns the
// inline-PTX versions off). Written from the PTX ISA ("Matrix fragments for
// mma.m16n8k16", "ldmatrix", "cp.async"), not from the kernels:
//  - ldmatrix.x4 (.trans): every lane publishes its row address (a warp-wide
//    all-gather), matrix i's rows are the addresses of lanes 8i .. 8i + 7, and
//    lane (g = lane / 4, t = lane % 4) gets elements (g, 2t), (g, 2t + 1) of
//    matrix i, or with .trans (2t, g), (2t + 1, g); row addresses must be
//    16-byte aligned.
//  - mma.m16n8k16.row.col bf16 -> fp32: every lane publishes its A (4 regs)
//    and B (2 regs) fragments, each lane rebuilds the 16x16 A and 16x8 B
//    from the documented layout and computes its own C elements (products
//    summed in double, added to the fp32 accumulator: the hardware's order of
//    fp32 additions is unspecified).
//  - cp.async: a 16-byte copy, its source checked as __ldg (aligned, inside
//    the registered buffers) when src_bytes is 16, 16 zero bytes when it is 0,
//    that lands when the issuing thread's cp.async.wait_group completes its
//    group; ldmatrix's rows are race-checked against the copies (missing wait,
//    missing barrier, overwriting a stage in use: emu::Device's rules).
#pragma once
#include <cstdint>
#include <cstring>

#include "cuda_bf16.h"
#include "emu_device.h"

#define PDSIM_EMU_MMA_SM80 1

namespace emu_mma {
inline std::uint32_t bits_of(const __nv_bfloat16* p) {
  std::uint32_t u = 0;
  std::memcpy(&u, p, 4);
  return u;
}
inline std::uint16_t half_of(const __nv_bfloat16* p) { return p->x; }
inline float lo(std::uint32_t w) { return __bfloat162float({static_cast<std::uint16_t>(w & 0xffffu)}); }
inline float hi(std::uint32_t w) { return __bfloat162float({static_cast<std::uint16_t>(w >> 16)}); }
// Every lane's row address (lane l's in rows[l]); records a misaligned one.
inline void gather_rows(const __nv_bfloat16* p, const __nv_bfloat16* (&rows)[32]) {
  emu::Device& d = emu::Device::current();
  if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0) d.report("ldmatrix row address is not 16-byte aligned");
  d.shared_read_16(p, "ldmatrix");
  const std::uint64_t mine = reinterpret_cast<std::uintptr_t>(p);
  std::uint64_t all[32][emu::Device::kGatherWords];
  d.gather(0xffffffffu, &mine, 1, all);
  for (int l = 0; l < 32; ++l) rows[l] = reinterpret_cast<const __nv_bfloat16*>(static_cast<std::uintptr_t>(all[l][0]));
}
}  // namespace emu_mma

inline void cp_async_16(void* dst, const void* src, int src_bytes) {
  emu::Device& d = emu::Device::current();
  if (reinterpret_cast<std::uintptr_t>(dst) % 16 != 0) d.report("cp.async destination is not 16-byte aligned");
  if (src_bytes != 0 && src_bytes != 16) d.report("cp.async src-size other than 0 or 16");
  d.async_copy_16(dst, src_bytes == 16 && d.check_load(src, 16, 16) ? src : nullptr);
}
inline void cp_async_commit() { emu::Device::current().async_commit(); }
template <int N>
inline void cp_async_wait() {
  emu::Device::current().async_wait(N);
}
// As the real wrapper: wait_group 0 (copies not yet committed do not land).
inline void cp_async_wait_all() { cp_async_wait<0>(); }

inline void ldmatrix_x4(std::uint32_t (&r)[4], const __nv_bfloat16* p) {
  const __nv_bfloat16* rows[32];
  emu_mma::gather_rows(p, rows);
  const int lane = static_cast<int>(threadIdx.x % 32), g = lane / 4, t = lane % 4;
  for (int i = 0; i < 4; ++i) r[i] = emu_mma::bits_of(rows[8 * i + g] + 2 * t);
}
inline void ldmatrix_x4_trans(std::uint32_t (&r)[4], const __nv_bfloat16* p) {
  const __nv_bfloat16* rows[32];
  emu_mma::gather_rows(p, rows);
  const int lane = static_cast<int>(threadIdx.x % 32), g = lane / 4, t = lane % 4;
  for (int i = 0; i < 4; ++i)
    r[i] = static_cast<std::uint32_t>(emu_mma::half_of(rows[8 * i + 2 * t] + g)) |
           static_cast<std::uint32_t>(emu_mma::half_of(rows[8 * i + 2 * t + 1] + g)) << 16;
}

inline void mma_bf16_16816(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0, std::uint32_t b1) {
  const std::uint64_t mine[3] = {a[0] | static_cast<std::uint64_t>(a[1]) << 32,
                                 a[2] | static_cast<std::uint64_t>(a[3]) << 32,
                                 b0 | static_cast<std::uint64_t>(b1) << 32};
  std::uint64_t all[32][emu::Device::kGatherWords];
  emu::Device::current().gather(0xffffffffu, mine, 3, all);
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    const std::uint32_t a0 = static_cast<std::uint32_t>(all[l][0]), a1 = static_cast<std::uint32_t>(all[l][0] >> 32),
                        a2 = static_cast<std::uint32_t>(all[l][1]), a3 = static_cast<std::uint32_t>(all[l][1] >> 32),
                        lb0 = static_cast<std::uint32_t>(all[l][2]), lb1 = static_cast<std::uint32_t>(all[l][2] >> 32);
    A[g][2 * t] = emu_mma::lo(a0), A[g][2 * t + 1] = emu_mma::hi(a0);
    A[g + 8][2 * t] = emu_mma::lo(a1), A[g + 8][2 * t + 1] = emu_mma::hi(a1);
    A[g][2 * t + 8] = emu_mma::lo(a2), A[g][2 * t + 9] = emu_mma::hi(a2);
    A[g + 8][2 * t + 8] = emu_mma::lo(a3), A[g + 8][2 * t + 9] = emu_mma::hi(a3);
    B[2 * t][g] = emu_mma::lo(lb0), B[2 * t + 1][g] = emu_mma::hi(lb0);
    B[2 * t + 8][g] = emu_mma::lo(lb1), B[2 * t + 9][g] = emu_mma::hi(lb1);
  }
  const int lane = static_cast<int>(threadIdx.x % 32), g = lane / 4, t = lane % 4;
  for (int e = 0; e < 4; ++e) {
    const int row = g + 8 * (e / 2), col = 2 * t + e % 2;
    double sum = 0;
    for (int k = 0; k < 16; ++k) sum += static_cast<double>(A[row][k]) * B[k][col];
    c[e] = static_cast<float>(c[e] + sum);
  }
}

// Two floats -> one .b32 of two bf16 (round to nearest even), lo in the low half.
inline std::uint32_t pack_bf16(float lo, float hi) {
  return static_cast<std::uint32_t>(__float2bfloat16_rn(lo).x) |
         static_cast<std::uint32_t>(__float2bfloat16_rn(hi).x) << 16;
}
