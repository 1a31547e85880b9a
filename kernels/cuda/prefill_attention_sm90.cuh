// Hopper (sm_90a) prefill attention with wgmma: the launcher that
// attention.cu's dispatch calls, and the shared-memory layout / descriptor /
// fragment index helpers the kernel uses. The helpers are plain constexpr
// functions (host and device) so a host-side emulator can replay exactly the
// addresses and fragment indices the kernel computes.
//
// Layout facts these helpers encode (PTX ISA "Asynchronous Warpgroup Level
// Matrix Shared Memory Layout" and CUTLASS cute/atom/mma_traits_sm90_gmma.hpp):
//  - 128-byte swizzle: byte address bits [4, 7) (the 16-byte chunk within a
//    128-byte row) are XORed with bits [7, 10) (the row within an 8-row,
//    1024-byte atom). Tiles start 1024-byte aligned, so the XOR term is row % 8.
//  - A tile of R rows x C bf16 columns is stored as C / 64 panels of R rows x
//    128 bytes (64 columns); panel p starts at p * R * 128.
//  - K-major operand (Q as A, K as B of S = Q K^T): rows 8 apart are SBO =
//    1024 bytes apart; LBO unused for swizzled K-major (1 as CUTLASS sets it);
//    the k-step of 16 columns j (within a panel) starts 32 * j bytes in.
//  - MN-major operand (V as B of O = P V, transposed): 64 N-elements contiguous
//    per 128-byte row (one row per key); 8-key groups SBO = 1024 bytes apart;
//    64-column panels LBO = panel bytes apart.
//  - wgmma m64nN accumulator (CUTLASS CLayout_64xN): thread tid (0..127) value
//    v holds (row 16 * (tid / 32) + (tid % 32) / 4 + 8 * ((v / 2) % 2),
//    col 8 * (v / 4) + 2 * (tid % 4) + v % 2). The register A fragment of a
//    m64k16 step (ALayout_64x16) has the same form with k in place of col, so
//    the accumulator values of two adjacent 8-column blocks, packed in pairs,
//    are the A fragment of one 16-wide k-step.
#pragma once
#include <cstdint>
#include <string>

#include "kernels/cuda/ops.cuh"

#if defined(__CUDACC__)
#define PDSIM_SM90_HD __host__ __device__
#else
#define PDSIM_SM90_HD
#endif

namespace pdsim::kernels::cuda::sm90 {

// One CTA: WGS consumer warpgroups, each owning 64 query rows (BM = 64 WGS),
// K/V tiles of BN keys, head_dim HD; all bf16, 128-byte swizzled. MIN_BLOCKS:
// CTAs per SM the register allocation must allow (__launch_bounds__).
template <int HD_, int BN_, int WGS_, int MIN_BLOCKS_ = 1>
struct WgmmaPrefillConfig {
  static constexpr int HD = HD_, BN = BN_, WGS = WGS_, kMinBlocks = MIN_BLOCKS_;
  static constexpr int BM = 64 * WGS;
  static constexpr int kThreads = 128 * WGS;
  static constexpr std::uint32_t kQBytes = BM * HD * 2;
  static constexpr std::uint32_t kKVBytes = BN * HD * 2;  // one of K or V
  static constexpr std::uint32_t kStageBytes = 2 * kKVBytes;  // K then V
  // Shared-memory map (offsets from a 1024-byte aligned base): Q | stage 0 (K, V) | stage 1 (K, V).
  static constexpr std::uint32_t kQOffset = 0;
  PDSIM_SM90_HD static constexpr std::uint32_t stage_k_offset(int stage) { return kQBytes + stage * kStageBytes; }
  PDSIM_SM90_HD static constexpr std::uint32_t stage_v_offset(int stage) {
    return kQBytes + stage * kStageBytes + kKVBytes;
  }
  static constexpr std::uint32_t kUsedBytes = kQBytes + 2 * kStageBytes;
  static constexpr std::uint32_t kSmemBytes = kUsedBytes + 1024;  // + slack to align the base to 1024
  // V as an MN-major B operand: 64-column panels are BN * 128 bytes apart
  // (LBO). With one panel (HD 64) LBO is unused; it is then set equal to SBO
  // so the descriptor reads the same whichever of the two fields the hardware
  // takes as the 8-key stride.
  static constexpr std::uint32_t kVPanelBytes = BN * 128;
  static constexpr std::uint32_t kVLbo = HD == 64 ? 1024 : kVPanelBytes;
  // Bisecting aid: -DPDSIM_WGMMA_V_SPLIT issues O += P V as one m64n64 wgmma per
  // 64-column panel of V (LBO = SBO, so LBO's meaning cannot matter), instead
  // of one m64nHD wgmma whose descriptor steps panels by LBO.
#if defined(PDSIM_WGMMA_V_SPLIT)
  static constexpr bool kVSplit = true;
#else
  static constexpr bool kVSplit = false;
#endif
  static_assert(HD % 64 == 0 && BN % 64 == 0, "tiles are whole 64-column panels and 8-row atoms");
  static_assert(BN <= 256 && HD <= 256, "wgmma N is at most 256");
  static_assert(kQBytes % 1024 == 0 && kKVBytes % 1024 == 0, "every tile starts 1024-byte aligned");
};

// The configurations the launcher runs (register and shared-memory budgets
// at the kernel in prefill_attention_sm90.cu).
using WgmmaPrefill64 = WgmmaPrefillConfig<64, 128, 2, 2>;
using WgmmaPrefill128 = WgmmaPrefillConfig<128, 128, 2, 1>;

// Byte offset, within a 128B-swizzled tile of `rows` rows, of the 16-byte
// chunk c8 (columns 8 c8 .. 8 c8 + 7) of row r.
PDSIM_SM90_HD constexpr std::uint32_t sw128_chunk_offset(int rows, int r, int c8) {
  return static_cast<std::uint32_t>((c8 / 8) * rows * 128 + r * 128 + (((c8 % 8) ^ (r % 8)) * 16));
}

// Start offset (bytes from the tile) of a K-major operand for rows
// [row0, row0 + ...) and the 16-column k-step ks.
PDSIM_SM90_HD constexpr std::uint32_t kmajor_kstep_offset(int rows, int row0, int ks) {
  return static_cast<std::uint32_t>((ks / 4) * rows * 128 + row0 * 128 + (ks % 4) * 32);
}
// Start offset of the MN-major V operand for the 16-key k-step kk.
PDSIM_SM90_HD constexpr std::uint32_t mnmajor_kstep_offset(int kk) { return static_cast<std::uint32_t>(kk * 16 * 128); }

constexpr std::uint32_t kKMajorLbo = 16;     // unused by swizzled K-major layouts (CUTLASS: 1 in 16-byte units)
constexpr std::uint32_t kSbo = 1024;         // 8 rows x 128 bytes: the next 8-row (or 8-key) group

// wgmma shared-memory matrix descriptor: start address (shared window,
// bytes), LBO and SBO (bytes, multiples of 16), 128-byte swizzle (layout type
// 1 in bits 62-63), base offset 0 (every swizzle pattern starts 1024-aligned).
PDSIM_SM90_HD constexpr std::uint64_t gmma_desc_sw128(std::uint32_t addr, std::uint32_t lbo, std::uint32_t sbo) {
  return static_cast<std::uint64_t>((addr & 0x3FFFFu) >> 4) | (static_cast<std::uint64_t>((lbo >> 4) & 0x3FFFu) << 16) |
         (static_cast<std::uint64_t>((sbo >> 4) & 0x3FFFu) << 32) | (1ull << 62);
}

// Accumulator fragment of wgmma m64nN (fp32): thread tid of the warpgroup,
// value v -> row (0..63) and column.
PDSIM_SM90_HD constexpr int acc_row(int tid, int v) { return 16 * (tid / 32) + (tid % 32) / 4 + 8 * ((v / 2) % 2); }
PDSIM_SM90_HD constexpr int acc_col(int tid, int v) { return 8 * (v / 4) + 2 * (tid % 4) + v % 2; }
// P's register A fragment for the 16-key k-step kk: register i (0..3) packs
// accumulator values pa_src(kk, i) (low half) and pa_src(kk, i) + 1 (high half).
PDSIM_SM90_HD constexpr int pa_src(int kk, int i) { return 8 * kk + 2 * i; }

}  // namespace pdsim::kernels::cuda::sm90

namespace pdsim::kernels::cuda {
// Launches the wgmma prefill kernel and returns true where it applies (bf16,
// head_dim 64 or 128, a compute capability 9.0 device, 16-byte aligned
// tensors); else sets *why and returns false. Defined only in builds with
// sm_90a code (PDSIM_HAVE_SM90A).
// The shape checks both tensor-core prefill kernels (mma.sync in attention.cu,
// wgmma here) share: head_dim 64 or 128, q / k / v / out 16-byte aligned.
// Returns true where they pass; else sets *why.
inline bool prefill_tensor_core_shape_ok(const PrefillAttentionParams<bf16>& p, std::string* why) {
  if (p.head_dim != 64 && p.head_dim != 128) {
    *why = "head_dim is " + std::to_string(p.head_dim) + " (it has 64 and 128)";
    return false;
  }
  const auto addr = reinterpret_cast<std::uintptr_t>(p.q) | reinterpret_cast<std::uintptr_t>(p.k) |
                    reinterpret_cast<std::uintptr_t>(p.v) | reinterpret_cast<std::uintptr_t>(p.out);
  if (addr % 16 != 0) {
    *why = "q, k, v or out is not 16-byte aligned";
    return false;
  }
  return true;
}

bool try_prefill_wgmma(const PrefillAttentionParams<bf16>& p, cudaStream_t stream, std::string* why);
}  // namespace pdsim::kernels::cuda
