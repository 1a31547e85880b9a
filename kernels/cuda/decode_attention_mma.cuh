// Tensor-core decode attention over a paged KV cache (flash-decoding, pass 1),
// bf16, head_dim 64 or 128, up to 16 query heads per kv head, sm_80+: the
// grouped-query decode of FlashInfer, written here. The register kernel
// (decode_attention_regs.cuh) computes every q.k and p.v product on the CUDA
// cores, 2 G hd FMAs per token and kv head; at G 8 an H100 measured it
// issue-bound at 0.49-0.53 of the copy bandwidth (results/kernel-bench-h100-
// sxm.json). Here the G query rows of a kv head are the M rows of an
// mma.m16n8k16 tile (rows G..15 zero), so each token costs 2 hd / 8 / 16 mma
// per warp instead: the math leaves the issue slots to the loads.
// PDSIM_DECODE_KERNEL=mma picks it, and auto does on compute capability 9.x
// (attention.cu): an H200 measured it at 0.66-0.75 of the copy bandwidth at
// G 4 and 8 (register kernel: 0.61-0.68 and 0.35-0.38; results/targets-h200.md)
// and faster at every G 8 row of the decode table, 0.90x at G 4
// (results/decode-mma-h200.md).
//
// Work split as the register kernel: grid (num_splits, kv_heads, batch), one
// block per (split, kv head, sequence), the same split plan, workspace and
// pass 2 (decode_reduce.cuh). K/V tiles of BN = 16 x kWarps tokens stream
// through shared memory with cp.async, NST stages deep (NST - 1 tiles in
// flight while one is consumed); each token's row address comes from the
// block table, tokens past the range are zero-filled (src-size 0) and masked.
// Warp w takes tokens [16w, 16w + 16) of every tile and keeps its own online
// softmax state for the 16 rows (m, l per row; O as 16 x hd fp32 C
// fragments); per tile and warp:
//   S (16 x 16) = Q K^T   2 hd / 16 mma (A = Q fragments, in registers for
//                         the whole kernel; B = K via ldmatrix)
//   mask, online softmax in fp32, log2 domain (as the prefill mma kernel)
//   O += P V              hd / 8 mma (A = P re-packed from S's C fragments;
//                         B = V via ldmatrix.trans)
// At the end the warps' states merge through shared memory (which reuses the
// stage buffers) in merge_warps_and_store. Fragment layouts: mma_sm80.cuh.
//
// Pipeline: tile i is in cp.async group i (the prologue commits tiles
// 0 .. NST-2, Q with tile 0; iteration i commits tile i + NST - 1, or an empty
// group, so the count stays uniform); at the top of iteration i,
// wait_group(NST - 2) leaves tile i landed for this thread and the barrier
// after it for every thread, and also tells that every warp is done with tile
// i - 1, whose stage the prefetch then overwrites.
//
// Budget (hd 128, NST 3): shared 3 x 2 x 64 x 136 x 2 B + sQ 4.3 KiB =
// 106 KiB, 2 blocks per SM on an H100 (4 tiles, 128 KiB, in flight per SM);
// registers: O 64 + Q 32 + S 8 + addressing. Where a block may not have
// 106 KiB (an L40 allows 99), dispatch() takes NST 2 (72 KiB).
//
// REQUIRES (checked by the launcher): bf16, head_dim == Cfg::HD,
// heads / kv_heads <= 16, q / k_cache / v_cache 16-byte aligned.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/decode_reduce.cuh"
#include "kernels/cuda/mma_sm80.cuh"
#include "kernels/cuda/ops.cuh"

namespace pdsim::kernels::cuda::decode_mma {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kRows = 16;  // query rows of the m16 tile: G <= 16
constexpr unsigned kAllLanes = 0xffffffffu;
constexpr float kLog2eF = 1.4426950408889634f;

template <int HD_, int NST_>
struct Cfg {
  static constexpr int HD = HD_, NST = NST_;
  static constexpr int BN = 16 * kWarps;  // tokens per tile, 16 per warp
  static constexpr int LD = HD + 8;       // shared row stride (elements): ldmatrix rows on distinct banks
  static constexpr int kChunks = HD / 8;  // 16-byte chunks per row
  static constexpr int kStageElems = 2 * BN * LD;  // sK then sV
  static constexpr int kSmemElems = NST * kStageElems + kRows * LD;  // + sQ
  static constexpr std::size_t kSmemBytes = sizeof(bf16) * kSmemElems;
  static_assert(HD % 16 == 0, "mma k-steps are 16 wide");
  static_assert(NST >= 2, "at least double-buffered");
  static_assert((BN * kChunks) % kThreads == 0, "whole 16-byte chunks per thread");
  // The merge reuses the stages: kWarps x kRows x (HD acc + m + l) floats.
  static_assert(static_cast<std::size_t>(kWarps) * kRows * (HD + 2) * sizeof(float) <=
                    static_cast<std::size_t>(NST) * kStageElems * sizeof(bf16),
                "the merge's state fits the stage buffers");
};

template <class C>
__global__ void __launch_bounds__(kThreads) decode_attention_mma_kernel(DecodeAttentionParams<bf16> p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // cp.async / bf16 mma need sm_80; the launcher never picks this kernel there
#else
  constexpr int HD = C::HD, BN = C::BN, LD = C::LD, NST = C::NST, kChunks = C::kChunks;
  constexpr int kDSteps = HD / 16;  // k-steps of S = Q K^T; pairs of O's n-tiles
  constexpr int kDTiles = HD / 8;   // O's n-tiles

  const int split = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
  const int group = p.heads / p.kv_heads;
  const int h0 = kvh * group;
  const TokenRange tokens = decode_split_tokens(p, b, split);
  const int t_begin = tokens.begin, t_end = tokens.end;
  if (t_begin >= t_end) {  // empty split (or empty context); whole block
    write_empty_split(p, b, h0, group, split);
    return;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;

  PDSIM_DYNAMIC_SHARED(uint4, smem_u4);  // uint4: 16-byte aligned
  bf16* const smem = reinterpret_cast<bf16*>(smem_u4);
  bf16* const sQ = smem + NST * C::kStageElems;

  // q is (B, heads, HD): the group's rows are contiguous; rows group..15 are zeros.
  {
    const bf16* qg = p.q + (static_cast<long long>(b) * p.heads + h0) * HD;
    for (int i = threadIdx.x; i < kRows * kChunks; i += kThreads) {
      const int r = i / kChunks, c = (i % kChunks) * 8;
      const bool ok = r < group;
      cp_async_16(sQ + r * LD + c, ok ? qg + r * HD + c : qg, ok ? 16 : 0);
    }
  }

  // k/v cache is (num_blocks, block_tokens, kv_heads, HD): token u lives in slot
  // table[u / block_tokens] * block_tokens + u % block_tokens.
  const std::int32_t* table = p.block_table + static_cast<long long>(b) * p.max_blocks_per_seq;
  const long long slot_stride = static_cast<long long>(p.kv_heads) * HD;
  const bf16* const kbase = p.k_cache + static_cast<long long>(kvh) * HD;
  const bf16* const vbase = p.v_cache + static_cast<long long>(kvh) * HD;
  const int n_tiles = (t_end - t_begin + BN - 1) / BN;
  auto load_tile = [&](int tile) {
    bf16* sK = smem + (tile % NST) * C::kStageElems;
    bf16* sV = sK + BN * LD;
    const int k0 = t_begin + tile * BN;
#pragma unroll
    for (int k = 0; k < BN * kChunks / kThreads; ++k) {
      const int i = k * kThreads + threadIdx.x;
      const int r = i / kChunks, c = (i % kChunks) * 8;
      const int u = k0 + r;
      const bool ok = u < t_end;
      const int bt = p.block_tokens;
      const long long row = ok ? (static_cast<long long>(table[u / bt]) * bt + u % bt) * slot_stride : 0;
      cp_async_16(sK + r * LD + c, kbase + row + c, ok ? 16 : 0);
      cp_async_16(sV + r * LD + c, vbase + row + c, ok ? 16 : 0);
    }
  };
  load_tile(0);
  cp_async_commit();  // group 0: Q and tile 0
#pragma unroll
  for (int s = 1; s < NST - 1; ++s) {
    if (s < n_tiles) load_tile(s);
    cp_async_commit();
  }
  cp_async_wait<NST - 2>();
  __syncthreads();  // sQ and tile 0 visible to every warp

  // Q's A fragments, one per 16-dim k-step; ldmatrix matrices:
  // rows 0-7 x dims 0-7 | rows 8-15 x dims 0-7 | rows 0-7 x dims 8-15 | rows 8-15 x dims 8-15 -> a0 a1 a2 a3.
  std::uint32_t qf[kDSteps][4];
#pragma unroll
  for (int ks = 0; ks < kDSteps; ++ks) ldmatrix_x4(qf[ks], sQ + (lane % 16) * LD + ks * 16 + (lane / 16) * 8);

  float o[kDTiles][4];  // C fragments of O (unnormalized), rows g and g + 8
  float m_run[2] = {-INFINITY, -INFINITY};  // running max of rows g, g + 8 (log2 domain); quad-uniform
  float l_run[2] = {0.f, 0.f};              // this lane's partial sums (the quad's sum is the row's)
#pragma unroll
  for (int j = 0; j < kDTiles; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[j][e] = 0.f;
  const float scale_log2 = p.scale * kLog2eF;

  for (int it = 0; it < n_tiles; ++it) {
    if (it > 0) {
      cp_async_wait<NST - 2>();  // this thread's copies of tile it landed
      __syncthreads();           // ...everyone's; every warp is done with tile it - 1
    }
    if (it + NST - 1 < n_tiles) load_tile(it + NST - 1);  // into tile it - 1's stage
    cp_async_commit();

    const int u0 = t_begin + it * BN + warp * 16;  // the warp's first token
    if (u0 < t_end) {                              // warp-uniform
      const bf16* sK = smem + (it % NST) * C::kStageElems + warp * 16 * LD;
      const bf16* sV = sK + BN * LD;
      float s[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};  // tokens u0 + 8j + 2t (+1)
#pragma unroll
      for (int ks = 0; ks < kDSteps; ++ks) {
        // matrices: tokens 0-7 x dims 0-7 | tokens 0-7 x dims 8-15 | tokens 8-15 x dims 0-7 | tokens 8-15 x dims 8-15
        //        -> b0, b1 of n-tile 0; b0, b1 of n-tile 1
        std::uint32_t kb[4];
        ldmatrix_x4(kb, sK + ((lane % 8) + (lane / 16) * 8) * LD + ks * 16 + ((lane / 8) % 2) * 8);
        mma_bf16_16816(s[0], qf[ks], kb[0], kb[1]);
        mma_bf16_16816(s[1], qf[ks], kb[2], kb[3]);
      }
      if (u0 + 16 > t_end) {  // the range ends inside the warp's tokens
#pragma unroll
        for (int j = 0; j < 2; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            if (u0 + 8 * j + 2 * t + (e % 2) >= t_end) s[j][e] = -INFINITY;
      }
      // Online softmax per row (rows g and g + 8; a row lives in one quad).
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = fmaxf(fmaxf(s[0][2 * r], s[0][2 * r + 1]), fmaxf(s[1][2 * r], s[1][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(kAllLanes, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(kAllLanes, mx, 2));
        const float m_new = fmaxf(m_run[r], mx * scale_log2);
        const float corr = exp2f(m_run[r] - m_new);  // 0 on the first tile (m_run == -inf); m_new is finite
        m_run[r] = m_new;
        float sum = 0.f;
#pragma unroll
        for (int j = 0; j < 2; ++j)
#pragma unroll
          for (int e = 2 * r; e < 2 * r + 2; ++e) {
            const float pe = exp2f(fmaf(s[j][e], scale_log2, -m_new));  // masked: exp2(-inf) = 0
            s[j][e] = pe;
            sum += pe;
          }
        l_run[r] = l_run[r] * corr + sum;
#pragma unroll
        for (int j = 0; j < kDTiles; ++j) {
          o[j][2 * r] *= corr;
          o[j][2 * r + 1] *= corr;
        }
      }
      // O += P V: P's A fragment is S's two n-tiles' C fragments.
      std::uint32_t a[4];
      a[0] = pack_bf16(s[0][0], s[0][1]);
      a[1] = pack_bf16(s[0][2], s[0][3]);
      a[2] = pack_bf16(s[1][0], s[1][1]);
      a[3] = pack_bf16(s[1][2], s[1][3]);
#pragma unroll
      for (int dp = 0; dp < kDSteps; ++dp) {
        // .trans matrices: tokens 0-7 x dims 0-7 | tokens 8-15 x dims 0-7 | tokens 0-7 x dims 8-15 | tokens 8-15 x dims 8-15
        //               -> b0, b1 of O n-tile 2dp; b0, b1 of O n-tile 2dp + 1
        std::uint32_t vb[4];
        ldmatrix_x4_trans(vb, sV + ((lane % 8) + ((lane / 8) % 2) * 8) * LD + dp * 16 + (lane / 16) * 8);
        mma_bf16_16816(o[2 * dp], a, vb[0], vb[1]);
        mma_bf16_16816(o[2 * dp + 1], a, vb[2], vb[3]);
      }
    }
  }
  cp_async_wait<0>();  // no copy may land in the stages the merge reuses (the last groups are empty)
  __syncthreads();     // every warp is done with the stages

  // Each warp's state of the group's rows into shared memory, then the block merges.
  float* const sAcc = reinterpret_cast<float*>(smem);  // (kWarps, kRows, HD)
  float* const sM = sAcc + kWarps * kRows * HD;        // (kWarps, kRows)
  float* const sL = sM + kWarps * kRows;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = l_run[r];
    l += __shfl_xor_sync(kAllLanes, l, 1);
    l += __shfl_xor_sync(kAllLanes, l, 2);
    const int row = g + 8 * r;
    if (row >= group) continue;
    if (t == 0) {
      sM[warp * kRows + row] = m_run[r];
      sL[warp * kRows + row] = l;
    }
    float* acc = sAcc + (warp * kRows + row) * HD;
#pragma unroll
    for (int j = 0; j < kDTiles; ++j) {
      acc[8 * j + 2 * t] = o[j][2 * r];
      acc[8 * j + 2 * t + 1] = o[j][2 * r + 1];
    }
  }
  __syncthreads();
  merge_warps_and_store<kWarps>(p, b, h0, group, split, sM, sL, sAcc, kRows, HD);
#endif
}

// Picks the configuration for head_dim (64 or 128) and a block's shared
// memory limit (the device's opt-in maximum): 3 stages where they fit, else
// 2; calls launch(Cfg{}) and returns true, or false when neither fits. The
// launcher (attention.cu) and the emulated test both dispatch here.
template <class Launch>
bool dispatch(int head_dim, std::size_t max_smem_bytes, Launch&& launch) {
  auto pick = [&](auto three, auto two) {
    if (decltype(three)::kSmemBytes <= max_smem_bytes) {
      launch(three);
      return true;
    }
    if (decltype(two)::kSmemBytes <= max_smem_bytes) {
      launch(two);
      return true;
    }
    return false;
  };
  return head_dim == 64 ? pick(Cfg<64, 3>{}, Cfg<64, 2>{}) : pick(Cfg<128, 3>{}, Cfg<128, 2>{});
}

}  // namespace pdsim::kernels::cuda::decode_mma
