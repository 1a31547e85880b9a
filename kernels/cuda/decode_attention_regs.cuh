// Register-resident decode attention over a paged KV cache (flash-decoding),
// written for HBM bandwidth: K and V go from global memory straight into
// registers with 16-byte loads, several tokens' loads in flight per lane, no
// shared-memory staging, no block barrier in the main loop. Included by
// attention.cu (its launcher picks this kernel or the shared-memory one) and
// by tests/emu/test_decode_regs_emu.cc.
//
// Plain CUDA C++ (no inline PTX), so the device code also compiles as host C++
// under the fake CUDA headers of tests/emu (fibers for threads), where a test
// checks it against the float64 reference on every build, GPU or not.
//
// Work split. Grid (num_splits, kv_heads, batch) as the shared-memory kernel:
// a block owns context tokens [split * split_tokens, ...) of one (sequence, kv
// head) and all G = heads / kv_heads query rows of the group, so each K/V byte
// is read from HBM once. A "token group" of TG lanes covers one token's head
// vector, lane i of the group its 16-byte vectors i, i + TG, ... (VPL of them;
// hd 128 bf16: 16 vectors, TG 16, VPL 1, so a warp holds 2 tokens). Each group
// takes U tokens per step, so a warp step covers NT = (32 / TG) * U tokens and
// the block's 4 warps take consecutive steps of NT tokens in turn; each group
// keeps its own online-softmax state (m, l, acc) for all G rows, in registers.
// At the end the groups of a warp merge by shuffles and the warps of the block
// through shared memory, with the usual (m, l, acc) rescaling.
//
// Per step and lane: U * VPL independent 16-byte K loads and as many V loads
// are issued before the first use (the next step's block-table lookup too);
// scores are per-lane partial dot products reduced with __shfl_xor_sync over
// the token group; softmax is in the log2 domain (q pre-scaled by
// scale * log2(e)), and acc is rescaled only when a row's max grows.
// q sits in shared memory as fp32 in a lane-contiguous layout (a quarter warp
// reads 128 contiguous bytes: no bank conflicts), read once per row per step
// and reused for the step's U tokens; keeping it in registers would cost
// G * VPL * E more registers per lane.
//
// Budget (hd 128 bf16, G 8, U 3; ptxas -v, sm_90): 168 registers, 0 spills,
// so 3 blocks of 128 threads per SM (12 warps); acc 64 + (m, l) 16 + K as fp32
// 24 + raw V 12 + scores 24 + q slice 8 + addressing. Bytes in flight: per
// lane U * 2 * 16 = 96 B, per warp 3 KiB, 12 warps -> up to 36 KiB per SM,
// against the ~23 KiB an H100 needs (3 TB/s x ~1 us latency / 132 SMs).
// Issue, per token and kv head in warp instructions (a warp instruction covers
// 2 tokens at TG 16): FMAs 2 * G * hd / 32 = 64, score all-reduce G * log2(TG)
// shuffles + adds / 2 = 32, softmax (max, exp2, sum) in every lane ~32,
// unpacking and loads ~16: ~150, over 4 schedulers ~37 cycles per SM, against
// ~40 cycles per 512-byte token at 3 TB/s (56 at 70%). So loads and math must
// overlap well; if it falls short, the next cuts are the all-reduce of the
// scores and the redundant per-lane softmax (a reduce-scatter over the group).
// Measured on an H100 (2026-11-25, results/kernel-bench-h100-sxm.json): 0.79-
// 0.89 of the 3.0 TB/s copy bandwidth at G 4 (8B), 0.49-0.53 at G 8 (70B).
// Issuing the next step's loads before this step's math made G 8 slower
// (results/decode-g8-pipelining-h100-sxm.md): it is issue-bound, so those
// cuts (or QK^T on tensor cores) are what is left.
//
// Scatter (template flag; PDSIM_DECODE_KERNEL=regs-scatter, GB 8 only): an
// experiment for that issue-bound case; an H200 measured it at 0.42-0.48 of
// the copy bandwidth at G 8 (plain: 0.35-0.38; the mma kernel: 0.66-0.74),
// so it is not the default. The scores are reduce-scattered over the token group instead of
// all-reduced, each lane runs the online softmax of one row, and the rows'
// probabilities are fetched from their owner lanes (scatter_rows below).
// ptxas -v, sm_90, hd 128 bf16, G 8: 166 registers, 0 spills; in the PTX the
// kernel has 155 shuffles, 28 ex2 and 27 fp32 adds against 179, 56 and 120,
// and the same 472 FMAs, which stay the larger share of its issue: the
// expected gain is ~15%, short of the 0.7 target by itself.
//
// REQUIRES: head_dim * sizeof(T) % 16 == 0, head_dim / E <= TG * VPL, G <= GB,
// q / k_cache / v_cache 16-byte aligned (checked by the launcher).
#pragma once
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/decode_reduce.cuh"
#include "kernels/cuda/ops.cuh"

namespace pdsim::kernels::cuda::decode_regs {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr unsigned kAllLanes = 0xffffffffu;
constexpr float kLog2eF = 1.4426950408889634f;

// Compile-time shape of one instantiation: storage T, TG lanes per token,
// VPL 16-byte vectors per lane, GB query rows (G <= GB; rows past G are zero).
template <class T, int TG_, int VPL_, int GB_>
struct Cfg {
  static constexpr int TG = TG_, VPL = VPL_, GB = GB_;
  static constexpr int E = 16 / static_cast<int>(sizeof(T));  // elements per 16-byte vector
  static constexpr int D = VPL * E;                             // dims per lane per row
  static constexpr int GPW = 32 / TG;                           // token groups per warp
  // U: tokens per token group per step. G 8 takes 3 so that the kernel fits 168
  // registers (3 blocks per SM) without spilling (at 4 it wants 221: 2 blocks
  // per SM, fewer bytes in flight); smaller groups take 4.
  static constexpr int U = GB >= 8 ? 3 : 4;
  static constexpr int NT = GPW * U;                            // tokens per warp step
  static constexpr int kMaxHd = TG * VPL * E;
  // Launch bound: blocks of 128 threads per SM; 3 caps registers at 168, 4 at
  // 128 (65536 / (threads * blocks), rounded down to the allocation unit); each
  // the most that compiles without spills. The f32 head_dim > 128 variant
  // (VPL 2, tests only) spills under 3, so it has no bound.
  static constexpr int kMinBlocks = VPL > 1 ? 1 : GB >= 8 ? 3 : 4;
  static_assert(TG >= 1 && TG <= 32 && 32 % TG == 0, "TG must divide the warp");
  static_assert(NT <= 32, "one lane per token of a warp step looks up the block table");
  static_assert(E == 4 || E == 8, "T is float or bf16");
};

// 16 bytes of T -> E floats.
__device__ __forceinline__ void unpack(const uint4& raw, float (&f)[4], const float*) {
  f[0] = __uint_as_float(raw.x);
  f[1] = __uint_as_float(raw.y);
  f[2] = __uint_as_float(raw.z);
  f[3] = __uint_as_float(raw.w);
}
__device__ __forceinline__ void unpack(const uint4& raw, float (&f)[8], const bf16*) {
  // bf16 is the upper half of an fp32: element 2i is the low half of word i.
  const unsigned w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

// q rows of one block in shared memory, fp32, lane-contiguous: the 4 floats
// that lane `lig` needs for (row r, its vector c, quarter h) are adjacent to
// the next lane's. Element d of row r (d = vi * E + h * 4 + j, vi = c * TG + lig).
template <class C>
__device__ __forceinline__ int q_index(int r, int c, int h, int lig) {
  return (((r * C::VPL + c) * (C::E / 4) + h) * C::TG + lig) * 4;
}

// Scattered score reduction (the kernel's Scatter variant). Levels j = 0, 1, ...
// at lane offsets TG/2, TG/4, ... halve the rows a lane keeps (the upper half
// where the offset's bit of its lane-in-group is set) and add the partner's
// partials for them; after log2(GB) levels a lane holds one row, summed over
// the lanes that differ in the offsets used, and an all-reduce over the
// remaining offsets completes it. Per step and lane: (GB - 1) * U shuffles
// and adds for the halving levels plus U per remaining offset (G 8, U 3, TG
// 16: 21 + 3, against 96 for the all-reduce) and the softmax of one row
// instead of GB (3 exp2 against 24).
template <int GB, int TG>
__host__ __device__ constexpr int scatter_own_row(int lig) {
  int row = 0;
  for (int h = GB / 2, o = TG / 2; h >= 1; h /= 2, o /= 2)
    if (lig & o) row += h;
  return row;
}
// The lane (within its token group) that owns row r: the offsets' bits of r's halves, lower bits 0.
template <int GB, int TG>
__host__ __device__ constexpr int scatter_lane_of_row(int r) {
  int lane = 0;
  for (int h = GB / 2, o = TG / 2; h >= 1; h /= 2, o /= 2)
    if (r & h) lane += o;
  return lane;
}
// v[r][u]: this lane's partial scores; on return v[0][u] = row scatter_own_row(lig)'s totals.
template <int GB, int TG, int U>
__device__ __forceinline__ void scatter_rows(float (&v)[GB][U], int lig) {
#pragma unroll
  for (int h = GB / 2, o = TG / 2; h >= 1; h /= 2, o /= 2) {
    const bool hi = (lig & o) != 0;
#pragma unroll
    for (int r = 0; r < h; ++r)
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const float send = hi ? v[r][u] : v[r + h][u];
        const float keep = hi ? v[r + h][u] : v[r][u];
        v[r][u] = keep + __shfl_xor_sync(kAllLanes, send, o);
      }
  }
#pragma unroll
  for (int o = TG / (2 * GB); o > 0; o >>= 1)
#pragma unroll
    for (int u = 0; u < U; ++u) v[0][u] += __shfl_xor_sync(kAllLanes, v[0][u], o);
}

template <class T, int TG, int VPL, int GB, bool Scatter = false>
__global__ void __launch_bounds__(kThreads, (Cfg<T, TG, VPL, GB>::kMinBlocks))
    decode_regs_kernel(DecodeAttentionParams<T> p) {
  static_assert(!Scatter || (GB >= 2 && TG >= GB), "scattered scores need a row per lane pair: TG >= GB");
  using C = Cfg<T, TG, VPL, GB>;
  constexpr int E = C::E, D = C::D, U = C::U, NT = C::NT, GPW = C::GPW;
  __shared__ float4 sQ4[GB * C::kMaxHd / 4];          // q, pre-scaled, q_index layout
  __shared__ float sAcc[kWarps][GB][C::kMaxHd];       // per-warp unnormalized acc
  __shared__ float sM[kWarps][GB], sL[kWarps][GB];    // per-warp max, sum
  float* sQ = reinterpret_cast<float*>(sQ4);

  const int split = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
  const int hd = p.head_dim, nv = hd / E;  // 16-byte vectors per head vector
  const int group = p.heads / p.kv_heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / TG, lig = lane % TG;  // token group within the warp, lane within the group
  const TokenRange tokens = decode_split_tokens(p, b, split);
  const int t_begin = tokens.begin, t_end = tokens.end;
  const int h0 = kvh * group;  // first query head of this kv head

  if (t_begin >= t_end) {  // empty split (or empty context); whole block
    write_empty_split(p, b, h0, group, split);
    return;
  }

  // q is (B, heads, hd); the group's heads h0 .. h0 + group - 1 are contiguous.
  {
    const T* qg = p.q + (static_cast<long long>(b) * p.heads + h0) * hd;
    const float mul = p.scale * kLog2eF;
    for (int i = threadIdx.x; i < GB * C::kMaxHd; i += blockDim.x) {
      const int r = i / C::kMaxHd, d = i % C::kMaxHd;
      const int vi = d / E, h = (d % E) / 4, j = d % 4;
      const int c = vi / TG, l = vi % TG;
      sQ[q_index<C>(r, c, h, l) + j] = r < group && d < hd ? to_f32(qg[r * hd + d]) * mul : 0.f;
    }
  }
  __syncthreads();

  float acc[GB][D], m[GB], l[GB];
  // Scatter: the softmax state of this lane's own row (scatter_own_row).
  float m_own = -INFINITY, l_own = 0.f;
#pragma unroll
  for (int r = 0; r < GB; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.f;
#pragma unroll
    for (int i = 0; i < D; ++i) acc[r][i] = 0.f;
  }

  // k/v cache is (num_blocks, block_tokens, kv_heads, hd): token t lives in slot
  // table[t / block_tokens] * block_tokens + t % block_tokens.
  const std::int32_t* table = p.block_table + static_cast<long long>(b) * p.max_blocks_per_seq;
  const long long slot_stride = static_cast<long long>(p.kv_heads) * hd;  // elements per slot
  const T* kbase = p.k_cache + static_cast<long long>(kvh) * hd;
  const T* vbase = p.v_cache + static_cast<long long>(kvh) * hd;
  // Lane j < NT of a warp looks up the slot of token j of the warp's step (-1 past the range).
  auto slot_of = [&](int t) -> int {
    if (lane >= NT || t >= t_end) return -1;
    const int bt = p.block_tokens;
    return table[t / bt] * bt + t % bt;
  };
  constexpr int kStepTokens = kWarps * NT;  // tokens per block step
  int t_step = t_begin + warp * NT;
  int slot = slot_of(t_step + lane);
  for (; t_step < t_end; t_step += kStepTokens) {  // warp-uniform trip count
    const int next_slot = slot_of(t_step + kStepTokens + lane);  // next step's lookup, in flight early

    // Issue every K and V load of the step before the first use.
    uint4 kraw[U][VPL], vraw[U][VPL];
    bool valid[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int s = __shfl_sync(kAllLanes, slot, u * GPW + g);  // token u * GPW + g of the step
      valid[u] = s >= 0;
      const long long row = static_cast<long long>(s) * slot_stride;
#pragma unroll
      for (int c = 0; c < VPL; ++c) {
        const int vi = c * TG + lig;
        if (valid[u] && vi < nv) {
          kraw[u][c] = __ldg(reinterpret_cast<const uint4*>(kbase + row + vi * E));
          vraw[u][c] = __ldg(reinterpret_cast<const uint4*>(vbase + row + vi * E));
        } else {
          kraw[u][c] = make_uint4(0u, 0u, 0u, 0u);
          vraw[u][c] = make_uint4(0u, 0u, 0u, 0u);
        }
      }
    }

    // Scores s[r][u] = q[r] . k[u] (log2 domain): lane partials, reduced over the token group.
    float kf[U][VPL][E];
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int c = 0; c < VPL; ++c) unpack(kraw[u][c], kf[u][c], static_cast<const T*>(nullptr));
    float sc[GB][U];
#pragma unroll
    for (int r = 0; r < GB; ++r) {
      float qf[VPL][E];
#pragma unroll
      for (int c = 0; c < VPL; ++c)
#pragma unroll
        for (int h = 0; h < E / 4; ++h) {
          const float4 v4 = sQ4[q_index<C>(r, c, h, lig) / 4];
          qf[c][4 * h] = v4.x;
          qf[c][4 * h + 1] = v4.y;
          qf[c][4 * h + 2] = v4.z;
          qf[c][4 * h + 3] = v4.w;
        }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        float dot = 0.f;
#pragma unroll
        for (int c = 0; c < VPL; ++c)
#pragma unroll
          for (int e = 0; e < E; ++e) dot = fmaf(qf[c][e], kf[u][c][e], dot);
        sc[r][u] = dot;
      }
    }
    if constexpr (Scatter) {
      // Reduce-scatter the partial scores over the token group (each lane ends
      // with its own row's U totals), online softmax of that row alone, then
      // every row's probabilities (and, when a row's max grew, its rescale
      // factor) fetched from the lanes that own them.
      scatter_rows<GB, TG, U>(sc, lig);
      float mx = -INFINITY;
#pragma unroll
      for (int u = 0; u < U; ++u) mx = fmaxf(mx, valid[u] ? sc[0][u] : -INFINITY);
      const bool grew = mx > m_own;
      float corr = 1.f;
      if (grew) {
        corr = exp2f(m_own - mx);  // 0 on the first valid token (m_own == -inf)
        l_own *= corr;
        m_own = mx;
      }
      float pu[U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        pu[u] = valid[u] ? exp2f(sc[0][u] - m_own) : 0.f;
        l_own += pu[u];
      }
      const int base = g * TG;  // the token group's first lane
      if (__any_sync(kAllLanes, grew)) {
#pragma unroll
        for (int r = 0; r < GB; ++r) {
          const float c = __shfl_sync(kAllLanes, corr, base + scatter_lane_of_row<GB, TG>(r));
#pragma unroll
          for (int i = 0; i < D; ++i) acc[r][i] *= c;
        }
      }
#pragma unroll
      for (int r = 0; r < GB; ++r)
#pragma unroll
        for (int u = 0; u < U; ++u) sc[r][u] = __shfl_sync(kAllLanes, pu[u], base + scatter_lane_of_row<GB, TG>(r));
    } else {
#pragma unroll
      for (int o = TG / 2; o > 0; o >>= 1)
#pragma unroll
        for (int r = 0; r < GB; ++r)
#pragma unroll
          for (int u = 0; u < U; ++u) sc[r][u] += __shfl_xor_sync(kAllLanes, sc[r][u], o);

      // Online softmax per row; every lane of a group holds the same (m, l).
#pragma unroll
      for (int r = 0; r < GB; ++r) {
        float mx = -INFINITY;
#pragma unroll
        for (int u = 0; u < U; ++u) mx = fmaxf(mx, valid[u] ? sc[r][u] : -INFINITY);
        if (mx > m[r]) {                        // rare after the first steps: rescale only then
          const float corr = exp2f(m[r] - mx);  // 0 on the first valid token (m == -inf)
          l[r] *= corr;
#pragma unroll
          for (int i = 0; i < D; ++i) acc[r][i] *= corr;
          m[r] = mx;
        }
#pragma unroll
        for (int u = 0; u < U; ++u) {
          const float pu = valid[u] ? exp2f(sc[r][u] - m[r]) : 0.f;  // valid: m[r] finite, >= score
          l[r] += pu;
          sc[r][u] = pu;
        }
      }
    }

    // acc[r] += p[r][u] * v[u] on the lane's dims.
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int c = 0; c < VPL; ++c) {
        float vf[E];
        unpack(vraw[u][c], vf, static_cast<const T*>(nullptr));
#pragma unroll
        for (int r = 0; r < GB; ++r)
#pragma unroll
          for (int e = 0; e < E; ++e) acc[r][c * E + e] = fmaf(sc[r][u], vf[e], acc[r][c * E + e]);
      }
    slot = next_slot;
  }

  if constexpr (Scatter) {  // every row's (m, l), from the lanes that own them
#pragma unroll
    for (int r = 0; r < GB; ++r) {
      m[r] = __shfl_sync(kAllLanes, m_own, g * TG + scatter_lane_of_row<GB, TG>(r));
      l[r] = __shfl_sync(kAllLanes, l_own, g * TG + scatter_lane_of_row<GB, TG>(r));
    }
  }
  // Merge the token groups of the warp (lanes lig, lig + TG, ... hold the same dims).
#pragma unroll
  for (int o = TG; o < 32; o <<= 1)
#pragma unroll
    for (int r = 0; r < GB; ++r) {
      const float mo = __shfl_xor_sync(kAllLanes, m[r], o);
      const float lo = __shfl_xor_sync(kAllLanes, l[r], o);
      const float mn = fmaxf(m[r], mo);
      const float a = m[r] == -INFINITY ? 0.f : exp2f(m[r] - mn);  // a group with no token weighs 0
      const float bw = mo == -INFINITY ? 0.f : exp2f(mo - mn);
      l[r] = l[r] * a + lo * bw;
#pragma unroll
      for (int i = 0; i < D; ++i) {
        const float ao = __shfl_xor_sync(kAllLanes, acc[r][i], o);
        acc[r][i] = acc[r][i] * a + ao * bw;
      }
      m[r] = mn;
    }
  // Then the warps, through shared memory (group 0 of each warp writes).
  if (g == 0) {
#pragma unroll
    for (int r = 0; r < GB; ++r) {
      if (lig == 0) {
        sM[warp][r] = m[r];
        sL[warp][r] = l[r];
      }
#pragma unroll
      for (int c = 0; c < VPL; ++c) {
        const int vi = c * TG + lig;
        if (vi < nv)
#pragma unroll
          for (int e = 0; e < E; ++e) sAcc[warp][r][vi * E + e] = acc[r][c * E + e];
      }
    }
  }
  __syncthreads();
  merge_warps_and_store<kWarps>(p, b, h0, group, split, &sM[0][0], &sL[0][0], &sAcc[0][0][0], GB, C::kMaxHd);
}

// Picks the instantiation for storage T, head_dim and group = heads /
// kv_heads, and calls launch(TG, VPL, GB, Scatter) with each as a
// std::integral_constant: TG lanes per token (the smallest power of two >= the
// head's 16-byte vectors, up to 32), VPL vectors per lane (2 only for f32
// head_dim > 128), GB query rows (1, 4 or 8), Scatter (the scattered score
// reduction: only when `scatter` is asked for, at GB 8 with TG >= 8, see
// scatter_applies). The launcher in attention.cu and the host emulator test
// (tests/emu/) both dispatch here.
// REQUIRES: head_dim * sizeof(T) % 16 == 0, head_dim <= 256, 1 <= group <= 8.
// Where the scattered score reduction applies: groups of 5-8 query rows (GB 8)
// and more than 4 16-byte vectors per head (TG >= 8, dispatch's choice below).
template <class T>
constexpr bool scatter_applies(int head_dim, int group) {
  return group > 4 && head_dim / (16 / static_cast<int>(sizeof(T))) > 4;
}

template <class T, class Launch>
void dispatch(int head_dim, int group, bool scatter, Launch&& launch) {
  constexpr int E = 16 / static_cast<int>(sizeof(T));
  const int nv = head_dim / E;  // 16-byte vectors per head vector
  using No = std::false_type;
  auto by_group = [&](auto tg, auto vpl) {
    if (group == 1) {
      launch(tg, vpl, std::integral_constant<int, 1>{}, No{});
    } else if (group <= 4) {
      launch(tg, vpl, std::integral_constant<int, 4>{}, No{});
    } else {
      if constexpr (decltype(tg)::value >= 8) {
        if (scatter) return launch(tg, vpl, std::integral_constant<int, 8>{}, std::true_type{});
      }
      launch(tg, vpl, std::integral_constant<int, 8>{}, No{});
    }
  };
  using One = std::integral_constant<int, 1>;
  if (nv <= 4) {
    by_group(std::integral_constant<int, 4>{}, One{});
  } else if (nv <= 8) {
    by_group(std::integral_constant<int, 8>{}, One{});
  } else if (nv <= 16) {
    by_group(std::integral_constant<int, 16>{}, One{});
  } else if (nv <= 32) {
    by_group(std::integral_constant<int, 32>{}, One{});
  } else if constexpr (E == 4) {  // f32 head_dim 132 .. 256
    by_group(std::integral_constant<int, 32>{}, std::integral_constant<int, 2>{});
  }
}

}  // namespace pdsim::kernels::cuda::decode_regs
