// Causal prefill attention for Hopper (sm_90a) with wgmma: FlashAttention-3
// "lite". Built only for sm_90a (kernels/CMakeLists.txt: its own object
// library with -gencode=arch=compute_90a,code=sm_90a, when the CUDA
// architecture list has 90); attention.cu's dispatch calls try_prefill_wgmma
// (PDSIM_ATTENTION_KERNEL=wgmma demands it; auto picks it on compute
// capability 9.0 devices).
//
// Grid (ceil(max_seqlen / BM), heads, num_seqs), query tiles longest-first
// (blockIdx.x 0 is the last tile, which sees the most keys). A CTA owns query
// rows [q0, q0 + BM) of one (sequence, head) and has WGS warpgroups (4
// consecutive warps each); warpgroup w owns rows [q0 + 64 w, q0 + 64 w + 64).
// Every thread copies: Q once, then K/V tiles of BN keys with cp.async (16
// bytes, zero-filled past the sequence end) into 128-byte-swizzled shared
// memory, double-buffered (tile i + 1 in flight while tile i is consumed). Per
// tile, each warpgroup whose rows reach the tile (causal tile skipping):
//   S = Q K^T     wgmma m64nBNk16, A = Q and B = K from shared memory (K-major),
//                 HD / 16 k-steps, then wait
//   causal mask on the diagonal tile, online softmax in fp32 (log2 domain) on
//   the accumulator fragments (a row lives in one quad of lanes)
//   O += P V      wgmma m64nHDk16, A = P from registers (S's accumulators
//                 rounded to bf16 pairs: two adjacent 8-column accumulator
//                 blocks are one k16 A fragment), B = V from shared memory
//                 (MN-major, transposed), BN / 16 k-steps, then wait
// and O / l is written as bf16 at the end. Keys past the sequence end are
// zero in shared memory and masked by causality for every stored row; rows
// past the end compute on zeros and are never stored. With a cached prefix
// (cu_seqlens_k) key positions are shifted by it: row r sees [0, prefix + r].
//
// Not (yet) FlashAttention-3: no TMA, no producer warp specialization, no
// ping-pong scheduling between warpgroups and no overlap of softmax with the
// next tile's wgmma inside a warpgroup; each wgmma batch is waited for before
// its result is used. Overlap comes from the two warpgroups of a CTA drifting
// apart and from the cp.async prefetch.
//
// Ordering: cp.async writes shared memory through the generic proxy and wgmma
// reads it through the async proxy, so after cp.async.wait_group each thread
// runs fence.proxy.async.shared::cta, then the CTA barrier makes every
// thread's copies visible. wgmma.fence precedes each batch (accumulator and A
// registers were written by ordinary instructions); wgmma.wait_group 0
// completes it (including its shared-memory reads, so the barrier at the end
// of tile i also frees stage i & 1 for the prefetch issued in tile i + 1).
// Shared-memory layouts, descriptors and fragment layouts: see
// prefill_attention_sm90.cuh.
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <string>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/prefill_attention_sm90.cuh"

namespace pdsim::kernels::cuda {
namespace {

using sm90::WgmmaPrefillConfig;

// 128 query rows (2 warpgroups, 256 threads) and 128-key tiles per CTA.
// head_dim 64: S 64 + O 32 fp32 and P 32 registers per thread, capped at 128
// so that 2 CTAs share an SM; shared memory Q 16 KiB + 2 stages x (K + V)
// 32 KiB = 80 KiB (+1 KiB alignment slack) per CTA.
// head_dim 128: S 64 + O 64 fp32 and P 32 registers; 32 + 2 x 64 = 160 KiB
// (+1), one CTA per SM.
// ptxas -v (nvcc 13.0, sm_90a, -O3): head_dim 64: 127 registers, head_dim
// 128: 219 registers; 0 bytes stack, 0 spills, no wgmma serialization warning
// (C7512; capping head_dim 128 at 128 registers spills 1.5 KB and serializes
// wgmma). PTX: head_dim 64 has 4 m64n128k16 (S) + 8 m64n64k16 (O) wgmma per
// tile, head_dim 128 has 8 + 8 m64n128k16. (The two configurations live in
// the header, where the host emulator test replays them too.)
using sm90::WgmmaPrefill128;
using sm90::WgmmaPrefill64;

constexpr float kLog2e = 1.4426950408889634f;
constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ std::uint32_t smem_u32(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
// 16 bytes global -> shared, asynchronous; src_bytes == 0 writes 16 zero bytes (src is not read).
__device__ __forceinline__ void cp_async_16(std::uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(__cvta_generic_to_global(src)),
               "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }
// This thread's generic-proxy shared-memory writes become visible to the async proxy (wgmma).
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
// Keeps the compiler from moving accesses of wgmma's registers across the
// asynchronous region (CUTLASS's warpgroup_fence_operand).
template <int R>
__device__ __forceinline__ void fence_regs(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
// Two floats -> one .b32 of two bf16 (round to nearest), lo in the low half.
__device__ __forceinline__ std::uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const std::uint32_t*>(&v);
}

#endif
}  // namespace
namespace sm90 {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
// PTX operand order (CUTLASS cute/arch/mma_sm90_gmma.hpp):
//   SS: {d}, a-desc, b-desc, scale-d, imm-scale-a, imm-scale-b, imm-tnsp-a, imm-tnsp-b
//   RS: {d}, {a0..a3}, b-desc, scale-d, imm-scale-a, imm-scale-b, imm-tnsp-b
// scale-d (a predicate) 0: d = A B, 1: d += A B. tnsp 0: K-major, 1: MN-major.
// d (m64n64, fp32) = scale_d ? d + A B : A B; A, B from shared memory (descriptors), both K-major.
__device__ __forceinline__ void wgmma_ss_m64n64k16(float (&d)[32], std::uint64_t a, std::uint64_t b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
      "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(a), "l"(b), "r"(scale_d));
}
// d (m64n128, fp32) = scale_d ? d + A B : A B; A, B from shared memory (descriptors), both K-major.
__device__ __forceinline__ void wgmma_ss_m64n128k16(float (&d)[64], std::uint64_t a, std::uint64_t b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(a), "l"(b), "r"(scale_d));
}
// d (m64n64, fp32) += A B; A (m64k16 bf16) from registers, B from shared memory, MN-major (transposed).
__device__ __forceinline__ void wgmma_rs_m64n64k16_tb(float* d, const std::uint32_t (&a)[4], std::uint64_t b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
      "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}
// d (m64n128, fp32) += A B; A (m64k16 bf16) from registers, B from shared memory, MN-major (transposed).
__device__ __forceinline__ void wgmma_rs_m64n128k16_tb(float (&d)[64], const std::uint32_t (&a)[4], std::uint64_t b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

#endif
}  // namespace sm90
namespace {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
using namespace sm90;

template <int N>
__device__ __forceinline__ void wgmma_ss(float (&d)[N / 2], std::uint64_t a, std::uint64_t b, int scale_d) {
  if constexpr (N == 64) wgmma_ss_m64n64k16(d, a, b, scale_d);
  else wgmma_ss_m64n128k16(d, a, b, scale_d);
}
template <int N>
__device__ __forceinline__ void wgmma_rs_tb(float (&d)[N / 2], const std::uint32_t (&a)[4], std::uint64_t b) {
  if constexpr (N == 64) wgmma_rs_m64n64k16_tb(d, a, b);
  else wgmma_rs_m64n128k16_tb(d, a, b);
}

// Rows [0, ROWS) of a (ROWS, HD) bf16 tile into 128B-swizzled shared memory
// at `tile` (shared-window address, 1024-aligned): row r from src + r * stride
// (elements) when r < n_valid, else zeros. n_valid >= 1 (src row 0 is
// readable). Whole CTA participates; issues cp.async only.
template <class Cfg, int ROWS>
__device__ __forceinline__ void load_tile_sw128(std::uint32_t tile, const bf16* src, long long stride, int n_valid) {
  constexpr int kChunks = Cfg::HD / 8;  // 16-byte chunks per row
  static_assert((ROWS * kChunks) % Cfg::kThreads == 0, "whole chunks per thread");
#pragma unroll
  for (int k = 0; k < ROWS * kChunks / Cfg::kThreads; ++k) {
    const int i = k * Cfg::kThreads + static_cast<int>(threadIdx.x);
    const int r = i / kChunks, c8 = i % kChunks;
    const bool ok = r < n_valid;
    cp_async_16(tile + sm90::sw128_chunk_offset(ROWS, r, c8), ok ? src + r * stride + c8 * 8 : src, ok ? 16 : 0);
  }
}
#endif  // sm_90a device code

template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks)
    prefill_attention_wgmma_kernel(PrefillAttentionParams<bf16> p) {
#if !(defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL))
  __trap();  // wgmma needs sm_90a; this file is built for nothing else
#else
  using namespace sm90;
  constexpr int HD = Cfg::HD, BN = Cfg::BN, BM = Cfg::BM;
  constexpr int kDSteps = HD / 16;  // k-steps of S = Q K^T
  constexpr int kKSteps = BN / 16;  // k-steps of O += P V

  const int seq = blockIdx.z, h = blockIdx.y;
  const int start = p.cu_seqlens[seq];
  const int len = p.cu_seqlens[seq + 1] - start;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * BM;
  if (q0 >= len) return;  // whole block exits: no barrier is skipped
  const int kvh = h / (p.heads / p.kv_heads);
  const int wg = threadIdx.x / 128;   // warpgroup (warps 4 wg .. 4 wg + 3)
  const int tid = threadIdx.x % 128;  // thread within the warpgroup
  const PrefillKeys keys = prefill_keys(p, seq, start, len);
  const int off = keys.prefix;  // query row r is key position off + r
  const int kv_end = min(keys.len, off + q0 + BM);  // causal: keys [0, off + q0 + BM) at most
  const int n_tiles = (kv_end + BN - 1) / BN;

  // Shared memory, from a 1024-byte aligned base (the 128-byte swizzle repeats every 1024 bytes).
  extern __shared__ uint4 smem_u4[];
  const std::uint32_t base = (smem_u32(smem_u4) + 1023u) & ~1023u;

  // q is (T, heads, HD), k/v are (Tk, kv_heads, HD).
  const long long q_stride = static_cast<long long>(p.heads) * HD;
  const long long kv_stride = static_cast<long long>(p.kv_heads) * HD;
  const bf16* const k_seq = p.k + (static_cast<long long>(keys.start) * p.kv_heads + kvh) * HD;
  const bf16* const v_seq = p.v + (static_cast<long long>(keys.start) * p.kv_heads + kvh) * HD;
  auto load_kv = [&](int stage, int k0) {
    load_tile_sw128<Cfg, BN>(base + Cfg::stage_k_offset(stage), k_seq + k0 * kv_stride, kv_stride, keys.len - k0);
    load_tile_sw128<Cfg, BN>(base + Cfg::stage_v_offset(stage), v_seq + k0 * kv_stride, kv_stride, keys.len - k0);
  };

  load_tile_sw128<Cfg, BM>(base + Cfg::kQOffset, p.q + (static_cast<long long>(start + q0) * p.heads + h) * HD,
                           q_stride, len - q0);
  load_kv(0, 0);
  cp_async_commit();
  cp_async_wait_all();
  fence_proxy_async();
  __syncthreads();  // Q and stage 0 visible to every warpgroup's wgmma

  float o[HD / 2];  // accumulator fragment of O (64 x HD per warpgroup), unnormalized
#pragma unroll
  for (int i = 0; i < HD / 2; ++i) o[i] = 0.f;
  float m_run[2] = {-INFINITY, -INFINITY};  // running max of rows acc_row(tid, 0) / +8 (log2 domain); quad-uniform
  float l_run[2] = {0.f, 0.f};              // this thread's partial running sums (the quad's sum is the row's)
  const float scale_log2 = p.scale * kLog2e;
  const int wg_row0 = q0 + 64 * wg;  // in-sequence index of the warpgroup's first row
  const bool wg_live = wg_row0 < len;

  for (int it = 0; it < n_tiles; ++it) {
    const int k0 = it * BN;
    if (it + 1 < n_tiles) {  // prefetch the next tile into the other stage (free: see the barrier below)
      load_kv((it + 1) & 1, k0 + BN);
      cp_async_commit();
    }
    if (wg_live && k0 <= off + wg_row0 + 63) {  // warpgroup-uniform: some row of the warpgroup sees key k0
      const std::uint32_t k_tile = base + Cfg::stage_k_offset(it & 1);
      const std::uint32_t v_tile = base + Cfg::stage_v_offset(it & 1);

      // S = Q K^T (64 x BN per warpgroup).
      float s[BN / 2];
#pragma unroll
      for (int i = 0; i < BN / 2; ++i) s[i] = 0.f;
      fence_regs(s);
      wgmma_fence();
#pragma unroll
      for (int ks = 0; ks < kDSteps; ++ks) {
        const std::uint64_t da = gmma_desc_sw128(base + Cfg::kQOffset + kmajor_kstep_offset(BM, 64 * wg, ks),
                                                 kKMajorLbo, kSbo);
        const std::uint64_t db = gmma_desc_sw128(k_tile + kmajor_kstep_offset(BN, 0, ks), kKMajorLbo, kSbo);
        wgmma_ss<BN>(s, da, db, ks > 0 ? 1 : 0);
      }
      wgmma_commit();
      wgmma_wait_all();
      fence_regs(s);

      // Causal mask (only tiles that reach past the warpgroup's first row): key > off + row -> -inf.
      if (k0 + BN - 1 > off + wg_row0) {
#pragma unroll
        for (int v = 0; v < BN / 2; ++v)
          if (k0 + acc_col(tid, v) > off + wg_row0 + acc_row(tid, v)) s[v] = -INFINITY;
      }

      // Online softmax per row: r = 0 holds values 4j, 4j + 1; r = 1 (8 rows down) 4j + 2, 4j + 3.
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) mx = fmaxf(mx, fmaxf(s[4 * j + 2 * r], s[4 * j + 2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 2));
        const float m_new = fmaxf(m_run[r], mx * scale_log2);
        // A row with every score so far masked keeps m == -inf: use 0 so no (-inf) - (-inf) NaN.
        const float m_use = m_new == -INFINITY ? 0.f : m_new;
        const float corr = exp2f(m_run[r] - m_use);  // 0 while the row had no key
        m_run[r] = m_new;
        float sum = 0.f;
#pragma unroll
        for (int j = 0; j < BN / 8; ++j)
#pragma unroll
          for (int e = 2 * r; e < 2 * r + 2; ++e) {
            const float pe = exp2f(fmaf(s[4 * j + e], scale_log2, -m_use));  // masked: exp2(-inf) = 0
            s[4 * j + e] = pe;
            sum += pe;
          }
        l_run[r] = l_run[r] * corr + sum;
#pragma unroll
        for (int j = 0; j < HD / 8; ++j) {
          o[4 * j + 2 * r] *= corr;
          o[4 * j + 2 * r + 1] *= corr;
        }
      }

      // O += P V: P's A fragments from S's accumulators, V MN-major (transposed B).
      std::uint32_t pa[kKSteps][4];
#pragma unroll
      for (int kk = 0; kk < kKSteps; ++kk)
#pragma unroll
        for (int i = 0; i < 4; ++i) pa[kk][i] = pack_bf16(s[pa_src(kk, i)], s[pa_src(kk, i) + 1]);
      fence_regs(o);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < kKSteps; ++kk) {
        if constexpr (Cfg::kVSplit) {  // one m64n64 per 64-column panel of V (its own accumulator quarter/half)
#pragma unroll
          for (int pn = 0; pn < HD / 64; ++pn)
            wgmma_rs_m64n64k16_tb(
                o + 32 * pn, pa[kk],
                gmma_desc_sw128(v_tile + pn * Cfg::kVPanelBytes + mnmajor_kstep_offset(kk), kSbo, kSbo));
        } else {
          wgmma_rs_tb<HD>(o, pa[kk], gmma_desc_sw128(v_tile + mnmajor_kstep_offset(kk), Cfg::kVLbo, kSbo));
        }
      }
      wgmma_commit();
      wgmma_wait_all();
      fence_regs(o);
    }
    cp_async_wait_all();  // this thread's copies of tile it + 1 landed
    fence_proxy_async();  // ...and are visible to wgmma (async proxy)
    __syncthreads();      // ...everyone's, and every warpgroup is done with stage it & 1
  }

  if (!wg_live) return;  // no barrier follows
  // out is (T, heads, HD): rows acc_row(tid, 0) and +8, columns acc_col(tid, 4j + 2r) and +1.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = l_run[r];
    l += __shfl_xor_sync(kFull, l, 1);
    l += __shfl_xor_sync(kFull, l, 2);
    const float inv = l > 0.f ? 1.f / l : 0.f;  // l >= 1 for every stored row (its max key gives exp2(0))
    const int row = wg_row0 + acc_row(tid, 2 * r);
    if (row >= len) continue;
    bf16* const orow = p.out + (static_cast<long long>(start + row) * p.heads + h) * HD;
#pragma unroll
    for (int j = 0; j < HD / 8; ++j)
      *reinterpret_cast<__nv_bfloat162*>(orow + acc_col(tid, 4 * j + 2 * r)) =
          __floats2bfloat162_rn(o[4 * j + 2 * r] * inv, o[4 * j + 2 * r + 1] * inv);
  }
#endif
}

template <class Cfg>
void prefill_wgmma_launch(const PrefillAttentionParams<bf16>& p, cudaStream_t stream) {
  auto kernel = prefill_attention_wgmma_kernel<Cfg>;
  int dev = 0, optin = 0;
  cudaCheck(cudaGetDevice(&dev));
  cudaCheck(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  PDSIM_CUDA_REQUIRE(Cfg::kSmemBytes <= static_cast<std::uint32_t>(optin),
                     "wgmma prefill attention needs " + std::to_string(Cfg::kSmemBytes) +
                         " bytes of shared memory, device allows " + std::to_string(optin));
  cudaCheck(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(Cfg::kSmemBytes)));
  const dim3 grid((p.max_seqlen + Cfg::BM - 1) / Cfg::BM, p.heads, p.num_seqs);
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(p);
  cudaCheckLaunch();
}

}  // namespace

bool try_prefill_wgmma(const PrefillAttentionParams<bf16>& p, cudaStream_t stream, std::string* why) {
  if (!prefill_tensor_core_shape_ok(p, why)) return false;
  int dev = 0, major = 0, minor = 0;
  cudaCheck(cudaGetDevice(&dev));
  cudaCheck(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  cudaCheck(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  if (major != 9 || minor != 0) {
    *why = "the device is sm_" + std::to_string(major) + std::to_string(minor) +
           " (it needs compute capability 9.0: its code is sm_90a only)";
    return false;
  }
  if (p.head_dim == 64)
    prefill_wgmma_launch<WgmmaPrefill64>(p, stream);
  else
    prefill_wgmma_launch<WgmmaPrefill128>(p, stream);
  return true;
}

}  // namespace pdsim::kernels::cuda
