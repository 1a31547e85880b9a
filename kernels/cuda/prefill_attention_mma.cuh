// Tensor-core causal prefill attention (bf16 mma.sync m16n8k16,
// FlashAttention-2 forward) for head_dim 64 and 128 on sm_80+. Included by
// attention.cu (its launcher) and by tests/emu/test_mma_kernels_emu.cc, which
// runs this device code on the host emulator (the primitives of
// mma_sm80.cuh have host versions there).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/attention_simt.cuh"
#include "kernels/cuda/mma_sm80.cuh"
#include "kernels/cuda/ops.cuh"

namespace pdsim::kernels::cuda {

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
// prefix + row for every valid row); rows past the end compute on zeros and
// are never stored. A warp skips the math of a tile whose first key is past
// its last row's position. With a cached prefix (cu_seqlens_k) every row's
// key positions are shifted by the prefix: row r sees keys [0, prefix + r].
//
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
  const PrefillKeys keys = prefill_keys(p, seq, start, len);
  const int off = keys.prefix;  // query row r is key position off + r
  const int kv_end = min(keys.len, off + q0 + BM);  // causal: keys [0, off + q0 + BM) at most
  const int n_tiles = (kv_end + BN - 1) / BN;

  PDSIM_DYNAMIC_SHARED(uint4, smem_u4);  // uint4: 16-byte aligned
  bf16* const smem = reinterpret_cast<bf16*>(smem_u4);
  bf16* const sQ = smem + (Cfg::kQInRegs ? 1 : 2) * Cfg::kStageElems;  // Q in registers: aliases stage 1

  // q is (T, heads, HD), k/v are (Tk, kv_heads, HD): token rows heads * HD / kv_heads * HD apart.
  const long long q_stride = static_cast<long long>(p.heads) * HD;
  const long long kv_stride = static_cast<long long>(p.kv_heads) * HD;
  const bf16* const k_seq = p.k + (static_cast<long long>(keys.start) * p.kv_heads + kvh) * HD;
  const bf16* const v_seq = p.v + (static_cast<long long>(keys.start) * p.kv_heads + kvh) * HD;
  auto load_kv = [&](int stage, int k0) {
    bf16* sK = smem + stage * Cfg::kStageElems;
    load_rows_async<Cfg, BN>(sK, k_seq + k0 * kv_stride, kv_stride, keys.len - k0);
    load_rows_async<Cfg, BN>(sK + BN * LD, v_seq + k0 * kv_stride, kv_stride, keys.len - k0);
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
  const float scale_log2 = p.scale * simt::kLog2e;
  const int warp_q_min = q0 + row0, warp_q_max = q0 + row0 + 16 * MT - 1;  // in-sequence row indices
  const bool warp_live = warp_q_min < len;

  for (int it = 0; it < n_tiles; ++it) {
    const int k0 = it * BN;
    if (it + 1 < n_tiles) {  // prefetch the next tile into the other stage (free: see the barrier below)
      load_kv((it + 1) & 1, k0 + BN);
      cp_async_commit();
    }
    if (warp_live && k0 <= off + warp_q_max) {  // warp-uniform
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

      // Causal mask (only tiles that reach past the warp's first row): key > off + row -> -inf.
      if (k0 + BN - 1 > off + warp_q_min) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int j = 0; j < kKTiles; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int row = warp_q_min + mt * 16 + g + (e / 2) * 8;
              const int key = k0 + j * 8 + 2 * t + (e % 2);
              if (key > off + row) s[mt][j][e] = -INFINITY;
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
          mx = fmaxf(mx, __shfl_xor_sync(simt::kFull, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(simt::kFull, mx, 2));
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
      l += __shfl_xor_sync(simt::kFull, l, 1);
      l += __shfl_xor_sync(simt::kFull, l, 2);
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

}  // namespace pdsim::kernels::cuda
