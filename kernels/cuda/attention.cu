// Attention kernels of the CUDA backend: causal prefill over a ragged batch and
// decode over a paged KV cache (flash-decoding). Storage T (bf16 or f32), fp32
// math. The CUDA-core kernels (prefill_attention_kernel and the shared-memory
// decode_attention_kernel, with their warp-level building block) live in
// attention_simt.cuh, the register decode kernel in decode_attention_regs.cuh,
// both plain CUDA C++ that tests/emu runs on the host; this file holds the
// tensor-core prefill kernel (inline PTX) and every launcher and dispatch.
//
// Prefill also has a tensor-core kernel (prefill_attention_mma_kernel: bf16
// mma.sync m16n8k16, FlashAttention-2 style) for head_dim 64 and 128 on sm_80+,
// which launch_prefill_attention picks by default; the CUDA-core kernel stays
// the fallback for every other case. On Hopper (compute capability 9.0, in
// builds with sm_90a code) a wgmma kernel (prefill_attention_sm90.cu,
// FlashAttention-3 style) comes first for bf16 at head_dim 64 and 128.
// PDSIM_ATTENTION_KERNEL=simt forces the fallback, =mma / =wgmma demand that
// kernel (an error where it does not apply), unset or =auto picks (wgmma where
// it applies, else mma, else simt); so a GPU session can compare and bisect.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include "kernels/cuda/attention_simt.cuh"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/decode_attention_regs.cuh"
#include "kernels/cuda/decode_reduce.cuh"
#include "kernels/cuda/ops.cuh"
#include "kernels/cuda/prefill_attention_sm90.cuh"

namespace pdsim::kernels::cuda {
namespace {

// The CUDA-core kernels and their helpers (attention_simt.cuh).
using simt::kDecodeWarps;
using simt::kFull;
using simt::kLog2e;
using simt::kPrefillRows;
using simt::kPrefillWarps;
using simt::kTile;
using simt::decode_attention_kernel;
using simt::prefill_attention_kernel;

// ------------------------------------------------------- prefill, mma.sync ---
// Tensor-core causal prefill (FlashAttention-2 forward), bf16 storage only,
// head_dim 64 and 128. Grid (ceil(max_seqlen / BM), heads, num_seqs), query
// tiles scheduled longest-first (blockIdx.x 0 is the last tile, which sees the
// most keys). One CTA owns query rows [q0, q0 + BM) of one (sequence, head);
// warp w owns rows [w * 16 * MT, (w + 1) * 16 * MT) of the tile as MT m16
// tiles (each K/V fragment read from shared memory feeds MT mmas). Q's
// fragments stay in registers for the whole kernel or, where registers are
// short, are re-read from sQ for every tile (Cfg::kQInRegs). K/V tiles of BN
// keys stream through shared memory with cp.async, double-buffered: tile
// i + 1 is in flight while tile i is consumed. Per tile and warp:
//   S = Q K^T           mma.m16n8k16 (A = Q via ldmatrix, B = K via ldmatrix)
//   causal mask, online softmax in fp32 (log2 domain: s * scale * log2(e), exp2f)
//   O += P V            mma.m16n8k16 (A = P re-packed from S's accumulators to
//                       bf16, B = V via ldmatrix.trans)
// and O / l is written as bf16 at the end. Keys past the sequence end are
// zero-filled by cp.async (src-size 0) and always masked by causality (key >
// row for every valid row); rows past the end compute on zeros and are never
// stored. A warp skips the math of a tile whose first key is past its last row.
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
// reuse); K stored [key][d] is B of S without transpose; V stored [key][d] is
// B of O with .trans.
// Shared memory: stage s (s = 0, 1) holds sK (BN, LD) then sV (BN, LD), bf16,
// LD = HD + 8 (rows 16 bytes apart mod 128, so ldmatrix's 8 rows hit distinct
// banks). sQ (BM, LD) follows the two stages or, with Q in registers, aliases
// stage 1: Q is read into registers (and a barrier passed) before the first
// load into stage 1 is issued. Barriers: after cp.async.wait_group 0 (a
// thread's own copies) a __syncthreads makes every thread's copies visible;
// the same barrier at the end of tile i keeps the prefetch into stage i & 1
// (issued at the top of tile i + 1) from overwriting what a warp still reads.
template <int HD_, int MT_, int BN_, int WARPS_, bool Q_IN_REGS_ = true>
struct MmaPrefillConfig {
  static constexpr int HD = HD_, MT = MT_, BN = BN_, WARPS = WARPS_;
  static constexpr bool kQInRegs = Q_IN_REGS_;  // false: Q's fragments are re-read from sQ every tile
  static constexpr int kThreads = WARPS * 32;
  static constexpr int BM = 16 * MT * WARPS;  // query rows per CTA
  static constexpr int LD = HD + 8;           // shared row stride (elements)
  static constexpr int kStageElems = 2 * BN * LD;
  // Q in registers: sQ aliases stage 1 (sized for the larger); else sQ has its own region after both stages.
  static constexpr int kSmemElems =
      kQInRegs ? kStageElems + (kStageElems > BM * LD ? kStageElems : BM * LD) : 2 * kStageElems + BM * LD;
  static constexpr std::size_t kSmemBytes = sizeof(bf16) * kSmemElems;
  static_assert(HD % 16 == 0 && BN % 16 == 0, "mma tiles are 16 wide");
  static_assert((BN * HD / 8) % kThreads == 0 && (BM * HD / 8) % kThreads == 0, "whole 16-byte chunks per thread");
};
// 128 query rows per CTA, 32 per warp (FA2's sm80 shape), chosen to fit 255
// registers without spills (ptxas -v, sm_80/89/90; per-thread accumulators
// O: 16 * MT * HD / 32, S: 16 * MT * BN / 32 floats):
//   head_dim 64:  O 64 + S 64 + Q 32 in registers, BN 64: ~243-250 registers, 36 KiB shared.
//   head_dim 128: O 128 + S 32, Q re-read from shared, BN 32: ~253-255 registers, 68 KiB shared.
// Alternative for head_dim 128 if a GPU shows the above slower: <128, 1, 64, 8>
// (16 rows per warp, Q in registers; ~205-212 registers, 1.5x the shared-memory
// reads per mma).
using MmaPrefill64 = MmaPrefillConfig<64, 2, 64, 4>;
using MmaPrefill128 = MmaPrefillConfig<128, 2, 32, 4, false>;

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
// Waits for all of this thread's copies; a __syncthreads must follow before others' copies are read.
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

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

// ROWS rows of HD bf16 into shared (ROWS, LD): row r comes from src + r * stride
// (elements) when r < n_valid, else zeros. n_valid >= 1 (src row 0 is readable).
// Whole block participates; issues cp.async only (caller commits and waits).
template <class Cfg, int ROWS>
__device__ __forceinline__ void load_rows_async(bf16* dst, const bf16* src, long long stride, int n_valid) {
  constexpr int kChunks = Cfg::HD / 8;  // 16-byte chunks per row
  static_assert((ROWS * kChunks) % Cfg::kThreads == 0, "whole chunks per thread");
#pragma unroll
  for (int k = 0; k < ROWS * kChunks / Cfg::kThreads; ++k) {
    const int i = k * Cfg::kThreads + threadIdx.x;
    const int r = i / kChunks, c = (i % kChunks) * 8;
    const bool ok = r < n_valid;
    cp_async_16(dst + r * Cfg::LD + c, ok ? src + r * stride + c : src, ok ? 16 : 0);
  }
}

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads) prefill_attention_mma_kernel(PrefillAttentionParams<bf16> p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // cp.async / bf16 mma need sm_80; the launcher never picks this kernel there
#else
  constexpr int HD = Cfg::HD, MT = Cfg::MT, BN = Cfg::BN, BM = Cfg::BM, LD = Cfg::LD;
  constexpr int kDSteps = HD / 16;  // k-steps of S = Q K^T; also pairs of O's n-tiles
  constexpr int kDTiles = HD / 8;   // O's n-tiles (8 dims each)
  constexpr int kKSteps = BN / 16;  // k-steps of O += P V; also pairs of S's n-tiles
  constexpr int kKTiles = BN / 8;   // S's n-tiles (8 keys each)

  const int seq = blockIdx.z, h = blockIdx.y;
  const int start = p.cu_seqlens[seq];
  const int len = p.cu_seqlens[seq + 1] - start;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * BM;
  if (q0 >= len) return;  // whole block exits: no barrier is skipped
  const int kvh = h / (p.heads / p.kv_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int kv_end = min(len, q0 + BM);  // causal: keys [0, q0 + BM) at most
  const int n_tiles = (kv_end + BN - 1) / BN;

  extern __shared__ uint4 smem_u4[];  // uint4: 16-byte aligned
  bf16* const smem = reinterpret_cast<bf16*>(smem_u4);
  bf16* const sQ = smem + (Cfg::kQInRegs ? 1 : 2) * Cfg::kStageElems;  // Q in registers: aliases stage 1

  // q is (T, heads, HD), k/v are (T, kv_heads, HD): token rows heads * HD / kv_heads * HD apart.
  const long long q_stride = static_cast<long long>(p.heads) * HD;
  const long long kv_stride = static_cast<long long>(p.kv_heads) * HD;
  const bf16* const k_seq = p.k + (static_cast<long long>(start) * p.kv_heads + kvh) * HD;
  const bf16* const v_seq = p.v + (static_cast<long long>(start) * p.kv_heads + kvh) * HD;
  auto load_kv = [&](int stage, int k0) {
    bf16* sK = smem + stage * Cfg::kStageElems;
    load_rows_async<Cfg, BN>(sK, k_seq + k0 * kv_stride, kv_stride, len - k0);
    load_rows_async<Cfg, BN>(sK + BN * LD, v_seq + k0 * kv_stride, kv_stride, len - k0);
  };

  load_rows_async<Cfg, BM>(sQ, p.q + (static_cast<long long>(start + q0) * p.heads + h) * HD, q_stride, len - q0);
  load_kv(0, 0);
  cp_async_commit();
  cp_async_wait_all();
  __syncthreads();  // sQ and stage 0 visible to every warp

  const int row0 = warp * 16 * MT;  // warp's first row within the tile
  // A fragment of Q for m-tile mt, 16-dim k-step ks; ldmatrix matrices:
  // rows 0-7 x dims 0-7 | rows 8-15 x dims 0-7 | rows 0-7 x dims 8-15 | rows 8-15 x dims 8-15 -> a0 a1 a2 a3.
  auto load_q = [&](std::uint32_t(&a)[4], int mt, int ks) {
    ldmatrix_x4(a, sQ + (row0 + mt * 16 + (lane % 16)) * LD + ks * 16 + (lane / 16) * 8);
  };
  std::uint32_t qf[Cfg::kQInRegs ? MT : 1][Cfg::kQInRegs ? kDSteps : 1][4];
  if constexpr (Cfg::kQInRegs) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int ks = 0; ks < kDSteps; ++ks) load_q(qf[mt][ks], mt, ks);
    __syncthreads();  // every warp holds its Q: stage 1 (== sQ) may be overwritten
  }

  float o[MT][kDTiles][4];  // C fragments of O (unnormalized)
  float m_run[MT][2];       // running max of row g / g + 8 (log2 domain); quad-uniform
  float l_run[MT][2];       // this lane's partial running sum (the quad's sum is the row's)
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int j = 0; j < kDTiles; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[mt][j][e] = 0.f;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      m_run[mt][r] = -INFINITY;
      l_run[mt][r] = 0.f;
    }
  }
  const float scale_log2 = p.scale * kLog2e;
  const int warp_q_min = q0 + row0, warp_q_max = q0 + row0 + 16 * MT - 1;  // in-sequence row indices
  const bool warp_live = warp_q_min < len;

  for (int it = 0; it < n_tiles; ++it) {
    const int k0 = it * BN;
    if (it + 1 < n_tiles) {  // prefetch the next tile into the other stage (free: see the barrier below)
      load_kv((it + 1) & 1, k0 + BN);
      cp_async_commit();
    }
    if (warp_live && k0 <= warp_q_max) {  // warp-uniform
      const bf16* sK = smem + (it & 1) * Cfg::kStageElems;
      const bf16* sV = sK + BN * LD;

      // S = Q K^T: s[mt][j] is the C fragment of keys k0 + 8j .. k0 + 8j + 7.
      float s[MT][kKTiles][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int j = 0; j < kKTiles; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) s[mt][j][e] = 0.f;
#pragma unroll
      for (int ks = 0; ks < kDSteps; ++ks) {
        std::uint32_t qs[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          if constexpr (Cfg::kQInRegs) {
#pragma unroll
            for (int i = 0; i < 4; ++i) qs[mt][i] = qf[mt][ks][i];
          } else {
            load_q(qs[mt], mt, ks);
          }
        }
#pragma unroll
        for (int np = 0; np < kKSteps; ++np) {
          // matrices: keys 0-7 x dims 0-7 | keys 0-7 x dims 8-15 | keys 8-15 x dims 0-7 | keys 8-15 x dims 8-15
          //        -> b0, b1 of n-tile 2np; b0, b1 of n-tile 2np + 1
          std::uint32_t b[4];
          ldmatrix_x4(b, sK + (np * 16 + (lane % 8) + (lane / 16) * 8) * LD + ks * 16 + ((lane / 8) % 2) * 8);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_bf16_16816(s[mt][2 * np], qs[mt], b[0], b[1]);
            mma_bf16_16816(s[mt][2 * np + 1], qs[mt], b[2], b[3]);
          }
        }
      }

      // Causal mask (only tiles that reach past the warp's first row): key > row -> -inf.
      if (k0 + BN - 1 > warp_q_min) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int j = 0; j < kKTiles; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int row = warp_q_min + mt * 16 + g + (e / 2) * 8;
              const int key = k0 + j * 8 + 2 * t + (e % 2);
              if (key > row) s[mt][j][e] = -INFINITY;
            }
      }

      // Online softmax per row (rows g and g + 8 of each m-tile; a row lives in one quad).
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          float mx = -INFINITY;
#pragma unroll
          for (int j = 0; j < kKTiles; ++j) mx = fmaxf(mx, fmaxf(s[mt][j][2 * r], s[mt][j][2 * r + 1]));
          mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 2));
          const float m_new = fmaxf(m_run[mt][r], mx * scale_log2);
          // A row with every score so far masked keeps m == -inf: use 0 so no (-inf) - (-inf) NaN.
          const float m_use = m_new == -INFINITY ? 0.f : m_new;
          const float corr = exp2f(m_run[mt][r] - m_use);  // 0 while the row had no key
          m_run[mt][r] = m_new;
          float sum = 0.f;
#pragma unroll
          for (int j = 0; j < kKTiles; ++j)
#pragma unroll
            for (int e = 2 * r; e < 2 * r + 2; ++e) {
              const float pe = exp2f(fmaf(s[mt][j][e], scale_log2, -m_use));  // masked: exp2(-inf) = 0
              s[mt][j][e] = pe;
              sum += pe;
            }
          l_run[mt][r] = l_run[mt][r] * corr + sum;
#pragma unroll
          for (int j = 0; j < kDTiles; ++j) {
            o[mt][j][2 * r] *= corr;
            o[mt][j][2 * r + 1] *= corr;
          }
        }
      }

      // O += P V over the tile's 16-key k-steps.
#pragma unroll
      for (int kp = 0; kp < kKSteps; ++kp) {
        std::uint32_t a[MT][4];  // P's A fragment = C fragments of S n-tiles 2kp, 2kp + 1
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          a[mt][0] = pack_bf16(s[mt][2 * kp][0], s[mt][2 * kp][1]);
          a[mt][1] = pack_bf16(s[mt][2 * kp][2], s[mt][2 * kp][3]);
          a[mt][2] = pack_bf16(s[mt][2 * kp + 1][0], s[mt][2 * kp + 1][1]);
          a[mt][3] = pack_bf16(s[mt][2 * kp + 1][2], s[mt][2 * kp + 1][3]);
        }
#pragma unroll
        for (int dp = 0; dp < kDSteps; ++dp) {
          // .trans matrices: keys 0-7 x dims 0-7 | keys 8-15 x dims 0-7 | keys 0-7 x dims 8-15 | keys 8-15 x dims 8-15
          //               -> b0, b1 of O n-tile 2dp; b0, b1 of O n-tile 2dp + 1
          std::uint32_t b[4];
          ldmatrix_x4_trans(b, sV + (kp * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * LD + dp * 16 + (lane / 16) * 8);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_bf16_16816(o[mt][2 * dp], a[mt], b[0], b[1]);
            mma_bf16_16816(o[mt][2 * dp + 1], a[mt], b[2], b[3]);
          }
        }
      }
    }
    cp_async_wait_all();  // this thread's copies of tile it + 1 landed
    __syncthreads();      // ...everyone's, and every warp is done with stage it & 1
  }

  // out is (T, heads, HD): row g / g + 8 of each m-tile, dims 8j + 2t, 8j + 2t + 1.
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float l = l_run[mt][r];
      l += __shfl_xor_sync(kFull, l, 1);
      l += __shfl_xor_sync(kFull, l, 2);
      const float inv = l > 0.f ? 1.f / l : 0.f;  // l >= 1 for every stored row (its max key gives exp2(0))
      const int row = warp_q_min + mt * 16 + g + r * 8;
      if (row >= len) continue;
      bf16* orow = p.out + (static_cast<long long>(start + row) * p.heads + h) * HD;
#pragma unroll
      for (int j = 0; j < kDTiles; ++j)
        *reinterpret_cast<__nv_bfloat162*>(orow + j * 8 + 2 * t) =
            __floats2bfloat162_rn(o[mt][j][2 * r] * inv, o[mt][j][2 * r + 1] * inv);
    }
  }
#endif
}

// ----------------------------------------------------------------- decode ---
// Two pass-1 kernels share one split plan, workspace and pass 2:
// - decode_regs_kernel (decode_attention_regs.cuh), the default where it
//   applies (head_dim * sizeof(T) % 16 == 0, head_dim <= 256, heads/kv_heads
//   <= 8, 16-byte aligned tensors): K/V straight from HBM into registers with
//   16-byte loads, several tokens in flight per lane, no shared-memory staging
//   and no barrier in the main loop; decode is bandwidth-bound, so this is the
//   kernel that must reach the copy bandwidth.
// - decode_attention_kernel (attention_simt.cuh; CUDA-core, shared-memory tiles), the
//   fallback for every other shape: per 32-token tile it syncs, stages K and V
//   as fp32 and every warp re-reads the tile (~8x the HBM bytes in shared
//   memory traffic, no load/compute overlap).
// PDSIM_DECODE_KERNEL (read at each launch) = auto | smem | regs picks, like
// PDSIM_ATTENTION_KERNEL for prefill.

// Shared-memory bytes above the 48 KiB default need an opt-in per kernel.
template <class Kernel>
void set_smem(Kernel kernel, std::size_t bytes) {
  int dev = 0, optin = 0;
  cudaCheck(cudaGetDevice(&dev));
  cudaCheck(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  // + the kernels' static shared memory (offs[32], 256 bytes).
  PDSIM_CUDA_REQUIRE(bytes + kTile * sizeof(long long) <= static_cast<std::size_t>(optin),
                     "attention needs " + std::to_string(bytes) + " bytes of shared memory, device allows " +
                         std::to_string(optin) + " (head_dim or heads/kv_heads too large)");
  // Static + dynamic must fit the 48 KiB default: count offs[] so dynamic sizes just under 48 KiB opt in too.
  if (bytes + kTile * sizeof(long long) > 48 * 1024)
    cudaCheck(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

int dims_per_lane(int hd) {
  PDSIM_CUDA_REQUIRE(hd >= 1 && hd <= 256, "head_dim must be in [1, 256], got " + std::to_string(hd));
  return simt::dims_per_lane(hd);
}

template <class T, int DPL>
void prefill_launch(const PrefillAttentionParams<T>& p, cudaStream_t stream) {
  const int hd = p.head_dim;
  const std::size_t smem = simt::prefill_smem_bytes(hd);
  auto kernel = prefill_attention_kernel<T, DPL>;
  set_smem(kernel, smem);
  const dim3 grid((p.max_seqlen + kPrefillRows - 1) / kPrefillRows, p.heads, p.num_seqs);
  kernel<<<grid, kPrefillWarps * 32, smem, stream>>>(p);
  cudaCheckLaunch();
}

// Which prefill kernel to run, from PDSIM_ATTENTION_KERNEL (read at every
// launch so a test or benchmark can switch it): unset/"auto" -> the wgmma
// kernel where it applies, else the mma kernel where it applies, else the
// CUDA-core one; "simt" -> always the CUDA-core one; "mma" / "wgmma" -> that
// kernel or an error saying why it does not apply.
enum class PrefillKernelChoice { kAuto, kSimt, kMma, kWgmma };
PrefillKernelChoice prefill_kernel_choice() {
  const char* e = std::getenv("PDSIM_ATTENTION_KERNEL");
  if (e == nullptr || *e == '\0' || std::strcmp(e, "auto") == 0) return PrefillKernelChoice::kAuto;
  if (std::strcmp(e, "simt") == 0) return PrefillKernelChoice::kSimt;
  if (std::strcmp(e, "mma") == 0) return PrefillKernelChoice::kMma;
  if (std::strcmp(e, "wgmma") == 0) return PrefillKernelChoice::kWgmma;
  PDSIM_CUDA_REQUIRE(false, std::string("PDSIM_ATTENTION_KERNEL must be auto, wgmma, mma or simt, got '") + e + "'");
  return PrefillKernelChoice::kAuto;
}

template <class Cfg>
void prefill_mma_launch(const PrefillAttentionParams<bf16>& p, cudaStream_t stream) {
  auto kernel = prefill_attention_mma_kernel<Cfg>;
  set_smem(kernel, Cfg::kSmemBytes);  // > 48 KiB (head_dim 128: 68 KiB) opts in, checked against the device
  const dim3 grid((p.max_seqlen + Cfg::BM - 1) / Cfg::BM, p.heads, p.num_seqs);
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(p);
  cudaCheckLaunch();
}

// Launches the tensor-core prefill kernel and returns true where it applies
// (bf16, head_dim 64 or 128, sm_80+, 16-byte aligned tensors); else sets *why.
template <class T>
bool try_prefill_mma(const PrefillAttentionParams<T>& p, cudaStream_t stream, std::string* why) {
  if constexpr (!std::is_same_v<T, bf16>) {
    (void)p;
    (void)stream;
    *why = "tensors are f32 (it reads bf16)";
    return false;
  } else {
    if (!prefill_tensor_core_shape_ok(p, why)) return false;
    int dev = 0, major = 0;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    if (major < 8) {
      *why = "the device is sm_" + std::to_string(major) + "x (it needs sm_80+)";
      return false;
    }
    if (p.head_dim == 64)
      prefill_mma_launch<MmaPrefill64>(p, stream);
    else
      prefill_mma_launch<MmaPrefill128>(p, stream);
    return true;
  }
}

// The Hopper wgmma kernel (prefill_attention_sm90.cu, compiled only for
// sm_90a): launches it and returns true where it applies; else sets *why.
template <class T>
bool try_prefill_wgmma_any(const PrefillAttentionParams<T>& p, cudaStream_t stream, std::string* why) {
  if constexpr (!std::is_same_v<T, bf16>) {
    (void)p;
    (void)stream;
    *why = "tensors are f32 (it reads bf16)";
    return false;
  } else {
#if defined(PDSIM_HAVE_SM90A)
    return try_prefill_wgmma(p, stream, why);
#else
    (void)p;
    (void)stream;
    *why = "this build has no sm_90a code (CMAKE_CUDA_ARCHITECTURES lacks 90)";
    return false;
#endif
  }
}

template <class T, int DPL, int ROWS>
void decode_launch(const DecodeAttentionParams<T>& p, cudaStream_t stream) {
  const int hd = p.head_dim, group = p.heads / p.kv_heads;
  const std::size_t smem = simt::decode_smem_bytes(group, hd);
  auto kernel = decode_attention_kernel<T, DPL, ROWS>;
  set_smem(kernel, smem);
  const dim3 grid(p.num_splits, p.kv_heads, p.batch);
  kernel<<<grid, kDecodeWarps * 32, smem, stream>>>(p);
  cudaCheckLaunch();
  if (p.num_splits > 1) {
    decode_reduce_kernel<T><<<static_cast<unsigned>(p.batch) * p.heads, 128, 0, stream>>>(p);
    cudaCheckLaunch();
  }
}

template <class T, int DPL>
void decode_dispatch_rows(const DecodeAttentionParams<T>& p, cudaStream_t stream) {
  const int group = p.heads / p.kv_heads;
  PDSIM_CUDA_REQUIRE(group <= 8 * kDecodeWarps,
                     "decode attention supports heads/kv_heads <= 32, got " + std::to_string(group));
  switch (simt::decode_rows_per_warp(group)) {
    case 1: return decode_launch<T, DPL, 1>(p, stream);
    case 2: return decode_launch<T, DPL, 2>(p, stream);
    case 4: return decode_launch<T, DPL, 4>(p, stream);
    default: return decode_launch<T, DPL, 8>(p, stream);
  }
}

// Which decode kernel to run, from PDSIM_DECODE_KERNEL (read at every launch so
// a test or benchmark can switch it): unset/"auto" -> the register kernel where
// it applies, else the shared-memory one; "smem" -> always the shared-memory
// one; "regs" -> the register kernel or an error saying why it does not apply;
// "regs-scatter" -> the register kernel with the scattered score reduction
// (groups of 5-8 query rows; an experiment, not yet measured on a GPU: see
// decode_attention_regs.cuh), or an error saying why it does not apply.
enum class DecodeKernelChoice { kAuto, kSmem, kRegs, kRegsScatter };
DecodeKernelChoice decode_kernel_choice() {
  const char* e = std::getenv("PDSIM_DECODE_KERNEL");
  if (e == nullptr || *e == '\0' || std::strcmp(e, "auto") == 0) return DecodeKernelChoice::kAuto;
  if (std::strcmp(e, "smem") == 0) return DecodeKernelChoice::kSmem;
  if (std::strcmp(e, "regs") == 0) return DecodeKernelChoice::kRegs;
  if (std::strcmp(e, "regs-scatter") == 0) return DecodeKernelChoice::kRegsScatter;
  PDSIM_CUDA_REQUIRE(false,
                     std::string("PDSIM_DECODE_KERNEL must be auto, smem, regs or regs-scatter, got '") + e + "'");
  return DecodeKernelChoice::kAuto;
}

template <class T, int TG, int VPL, int GB, bool Scatter>
void decode_regs_launch(const DecodeAttentionParams<T>& p, cudaStream_t stream) {
  const dim3 grid(p.num_splits, p.kv_heads, p.batch);
  decode_regs::decode_regs_kernel<T, TG, VPL, GB, Scatter><<<grid, decode_regs::kThreads, 0, stream>>>(p);
  cudaCheckLaunch();
  if (p.num_splits > 1) {
    decode_reduce_kernel<T><<<static_cast<unsigned>(p.batch) * p.heads, 128, 0, stream>>>(p);
    cudaCheckLaunch();
  }
}

// Launches the register decode kernel and returns true where it applies
// (head_dim * sizeof(T) a multiple of 16 bytes, head_dim <= 256, heads/kv_heads
// <= 8, q and the caches 16-byte aligned; with `scatter`, also what
// decode_regs::scatter_applies asks); else sets *why.
template <class T>
bool try_decode_regs(const DecodeAttentionParams<T>& p, cudaStream_t stream, bool scatter, std::string* why) {
  constexpr int E = 16 / sizeof(T);  // elements per 16-byte vector
  const int hd = p.head_dim, group = p.heads / p.kv_heads;
  if (hd % E != 0 || hd > 256) {
    *why = "head_dim is " + std::to_string(hd) + " (it needs head_dim <= 256 and head_dim * " +
           std::to_string(sizeof(T)) + " bytes a multiple of 16)";
    return false;
  }
  if (group > 8) {
    *why = "heads/kv_heads is " + std::to_string(group) + " (it holds at most 8 query rows per kv head)";
    return false;
  }
  const auto addr = reinterpret_cast<std::uintptr_t>(p.q) | reinterpret_cast<std::uintptr_t>(p.k_cache) |
                    reinterpret_cast<std::uintptr_t>(p.v_cache);
  if (addr % 16 != 0) {
    *why = "q, k_cache or v_cache is not 16-byte aligned";
    return false;
  }
  if (scatter && !decode_regs::scatter_applies<T>(hd, group)) {
    *why = "the scattered score reduction needs 5-8 query heads per kv head and head_dim * " +
           std::to_string(sizeof(T)) + " > 64 bytes (heads/kv_heads is " + std::to_string(group) +
           ", head_dim " + std::to_string(hd) + ")";
    return false;
  }
  decode_regs::dispatch<T>(hd, group, scatter, [&](auto tg, auto vpl, auto gb, auto sc) {
    decode_regs_launch<T, decltype(tg)::value, decltype(vpl)::value, decltype(gb)::value, decltype(sc)::value>(
        p, stream);
  });
  return true;
}

void check_heads(int heads, int kv_heads) {
  PDSIM_CUDA_REQUIRE(heads > 0 && kv_heads > 0 && heads % kv_heads == 0,
                     "heads (" + std::to_string(heads) + ") must be a positive multiple of kv_heads (" +
                         std::to_string(kv_heads) + ")");
}

}  // namespace

template <class T>
void launch_prefill_attention(const PrefillAttentionParams<T>& p, cudaStream_t stream) {
  check_heads(p.heads, p.kv_heads);
  PDSIM_CUDA_REQUIRE(p.num_seqs >= 0 && p.num_seqs <= 65535, "prefill attention: num_seqs must be <= 65535");
  PDSIM_CUDA_REQUIRE(p.heads <= 65535, "prefill attention: heads must be <= 65535");
  const PrefillKernelChoice choice = prefill_kernel_choice();
  if (p.num_seqs == 0 || p.max_seqlen <= 0) return;
  if (choice == PrefillKernelChoice::kAuto || choice == PrefillKernelChoice::kWgmma) {
    std::string why;
    if (try_prefill_wgmma_any(p, stream, &why)) return;
    PDSIM_CUDA_REQUIRE(choice == PrefillKernelChoice::kAuto,
                       "PDSIM_ATTENTION_KERNEL=wgmma, but the wgmma prefill kernel does not apply: " + why);
  }
  if (choice == PrefillKernelChoice::kAuto || choice == PrefillKernelChoice::kMma) {
    std::string why;
    if (try_prefill_mma(p, stream, &why)) return;
    PDSIM_CUDA_REQUIRE(choice == PrefillKernelChoice::kAuto,
                       "PDSIM_ATTENTION_KERNEL=mma, but the tensor-core prefill kernel does not apply: " + why);
  }
  switch (dims_per_lane(p.head_dim)) {
    case 1: return prefill_launch<T, 1>(p, stream);
    case 2: return prefill_launch<T, 2>(p, stream);
    case 4: return prefill_launch<T, 4>(p, stream);
    default: return prefill_launch<T, 8>(p, stream);
  }
}

template <class T>
void launch_decode_attention(const DecodeAttentionParams<T>& p, cudaStream_t stream) {
  check_heads(p.heads, p.kv_heads);
  PDSIM_CUDA_REQUIRE(p.batch >= 0 && p.batch <= 65535, "decode attention: batch must be <= 65535");
  PDSIM_CUDA_REQUIRE(p.kv_heads <= 65535, "decode attention: kv_heads must be <= 65535 (grid y)");
  PDSIM_CUDA_REQUIRE(p.block_tokens > 0, "decode attention: block_tokens must be > 0");
  PDSIM_CUDA_REQUIRE(p.num_splits == 1 || (p.split_tokens > 0 && p.split_tokens % kTile == 0 && p.partial_acc &&
                                           p.partial_max && p.partial_sum),
                     "decode attention: split mode needs split_tokens % 32 == 0 and a workspace");
  const DecodeKernelChoice choice = decode_kernel_choice();
  if (p.batch == 0) return;
  if (choice != DecodeKernelChoice::kSmem) {
    std::string why;
    const bool scatter = choice == DecodeKernelChoice::kRegsScatter;
    if (try_decode_regs(p, stream, scatter, &why)) return;
    PDSIM_CUDA_REQUIRE(choice == DecodeKernelChoice::kAuto,
                       std::string("PDSIM_DECODE_KERNEL=") + (scatter ? "regs-scatter" : "regs") +
                           ", but that decode kernel does not apply: " + why);
  }
  switch (dims_per_lane(p.head_dim)) {
    case 1: return decode_dispatch_rows<T, 1>(p, stream);
    case 2: return decode_dispatch_rows<T, 2>(p, stream);
    case 4: return decode_dispatch_rows<T, 4>(p, stream);
    default: return decode_dispatch_rows<T, 8>(p, stream);
  }
}

template void launch_prefill_attention<float>(const PrefillAttentionParams<float>&, cudaStream_t);
template void launch_prefill_attention<bf16>(const PrefillAttentionParams<bf16>&, cudaStream_t);
template void launch_decode_attention<float>(const DecodeAttentionParams<float>&, cudaStream_t);
template void launch_decode_attention<bf16>(const DecodeAttentionParams<bf16>&, cudaStream_t);

}  // namespace pdsim::kernels::cuda
