// CUDA-core (no tensor core) attention kernels of the CUDA backend: causal
// prefill over a ragged batch (prefill_attention_kernel, "simt") and decode over
// a paged KV cache with shared-memory tiles (decode_attention_kernel, "smem"),
// with the warp-level building block they share (attend_tile_rows): a 32-key
// tile of K and V sits in shared memory as fp32, lane j scores key j, and the
// warp folds the tile into the online-softmax state of each of its rows
// (running max m, running sum l, unnormalized acc) in the log2 domain (q is
// pre-scaled by softmax_scale * log2(e), so exp2 replaces exp). Written for
// correctness and clarity first; see the performance notes at each kernel.
// Included by attention.cu (launchers, dispatch) and by tests/emu/.
//
// Plain CUDA C++ (no inline PTX), so the device code also compiles as host C++
// under the fake CUDA headers of tests/emu (fibers for threads), where a test
// checks it against the float64 reference on every build, GPU or not.
// Dynamic shared memory is declared with PDSIM_DYNAMIC_SHARED (ops.cuh), which
// the emulator maps onto its per-block buffer.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/decode_reduce.cuh"
#include "kernels/cuda/ops.cuh"

namespace pdsim::kernels::cuda::simt {

constexpr int kTile = 32;          // keys per shared-memory tile == warp size
constexpr float kLog2e = 1.4426950408889634f;
constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(kFull, x, o));
  return x;
}
__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(kFull, x, o);
  return x;
}

// dst[r * ld + d] = mul * src[offs[r] + d] for r < nrows, d < hd (0 where offs[r] < 0).
// offs are element offsets into src (shared memory, written before the call).
// Uses 16-byte loads when every row start is 16-byte aligned (hd % (16 / sizeof(T)) == 0
// and src from cudaMalloc). Whole block participates.
template <class T>
__device__ void load_rows(float* dst, int ld, const T* src, const long long* offs, int nrows, int hd, float mul) {
  constexpr int V = 16 / sizeof(T);
  if (hd % V == 0) {
    const int vpr = hd / V;  // vectors per row
    for (int i = threadIdx.x; i < nrows * vpr; i += blockDim.x) {
      const int r = i / vpr, c = (i % vpr) * V;
      float* d = dst + r * ld + c;
      const long long off = offs[r];
      if (off >= 0) {
        PDSIM_CHECK_ALIGNED(src + off + c, 16);
        const uint4 raw = *reinterpret_cast<const uint4*>(src + off + c);
        const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int j = 0; j < V; ++j) d[j] = to_f32(e[j]) * mul;
      } else {
#pragma unroll
        for (int j = 0; j < V; ++j) d[j] = 0.f;
      }
    }
  } else {
    for (int i = threadIdx.x; i < nrows * hd; i += blockDim.x) {
      const int r = i / hd, c = i % hd;
      const long long off = offs[r];
      dst[r * ld + c] = off >= 0 ? to_f32(src[off + c]) * mul : 0.f;
    }
  }
}

// Online-softmax state of one query row, held by one warp: lane owns dims
// d = lane + 32 * i (i < DPL, d < head_dim).
template <int DPL>
struct RowState {
  float m;         // running max of scores (log2 domain), -inf before the first key
  float l;         // running sum of exp2(score - m)
  float acc[DPL];  // running sum of exp2(score - m) * v
  __device__ void init() {
    m = -INFINITY;
    l = 0.f;
#pragma unroll
    for (int i = 0; i < DPL; ++i) acc[i] = 0.f;
  }
};

// Fold one shared 32-key tile into the online-softmax states of R query rows
// held by one warp. Row r sees keys [0, n_valid[r]) of the tile (n_valid[r] <= 0:
// row untouched). The R rows share every K and V shared-memory load (register
// blocking), which is what bounds these CUDA-core kernels.
// Warp-uniform: all lanes pass the same arguments.
// q[r] is (hd) pre-scaled by scale*log2e, 16-byte aligned; sK is (kTile, hd + 1)
// (padded: lane j reads row j conflict-free); sV is (kTile, hd); smem rows of
// keys past the valid range hold finite values (zeros).
template <int DPL, int R>
__device__ __forceinline__ void attend_tile_rows(RowState<DPL> (&st)[R], const float* const (&q)[R],
                                                 const int (&n_valid)[R], const float* sK, const float* sV, int hd,
                                                 int lane) {
  int n_max = 0;
#pragma unroll
  for (int r = 0; r < R; ++r) n_max = max(n_max, n_valid[r]);
  if (n_max <= 0) return;

  // Scores: lane j computes q[r] . k[j] for every row r.
  float dot[R];
#pragma unroll
  for (int r = 0; r < R; ++r) dot[r] = 0.f;
  if (lane < n_max) {
    const float* kr = sK + lane * (hd + 1);
    if (hd % 4 == 0) {
      for (int d = 0; d < hd; d += 4) {
        const float k0 = kr[d], k1 = kr[d + 1], k2 = kr[d + 2], k3 = kr[d + 3];
#pragma unroll
        for (int r = 0; r < R; ++r) {
          PDSIM_CHECK_ALIGNED(q[r] + d, 16);
          const float4 qv = *reinterpret_cast<const float4*>(q[r] + d);  // broadcast
          dot[r] = fmaf(qv.x, k0, fmaf(qv.y, k1, fmaf(qv.z, k2, fmaf(qv.w, k3, dot[r]))));
        }
      }
    } else {
      for (int d = 0; d < hd; ++d) {
        const float kd = kr[d];
#pragma unroll
        for (int r = 0; r < R; ++r) dot[r] = fmaf(q[r][d], kd, dot[r]);
      }
    }
  }

  // Online softmax update per row (log2 domain).
  float p[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    p[r] = 0.f;
    if (n_valid[r] > 0) {
      const float s = lane < n_valid[r] ? dot[r] : -INFINITY;
      const float m_new = fmaxf(st[r].m, warp_max(s));  // finite: n_valid >= 1
      const float corr = exp2f(st[r].m - m_new);        // 0 on the row's first tile (m == -inf)
      p[r] = lane < n_valid[r] ? exp2f(s - m_new) : 0.f;
      st[r].l = st[r].l * corr + warp_sum(p[r]);
#pragma unroll
      for (int i = 0; i < DPL; ++i) st[r].acc[i] *= corr;
      st[r].m = m_new;
    }
  }

  // acc[r][d] += sum_j p[r][j] * v[j][d]; lane owns d = lane + 32 i.
  for (int j = 0; j < n_max; ++j) {
    float vj[DPL];
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
      const int d = lane + 32 * i;
      vj[i] = d < hd ? sV[j * hd + d] : 0.f;
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float pj = __shfl_sync(kFull, p[r], j);  // 0 for keys past row r's range
#pragma unroll
      for (int i = 0; i < DPL; ++i) st[r].acc[i] = fmaf(pj, vj[i], st[r].acc[i]);
    }
  }
}

// ---------------------------------------------------------------- prefill ---
// Grid (ceil(max_seqlen / kPrefillRows), heads, num_seqs); block kPrefillWarps warps.
// A block owns query rows [q0, q0 + 32) of one (sequence, head); warp w owns
// rows w, w + 8, w + 16, w + 24 (interleaved so causal work is balanced).
// Shared: sQ (32, hd) | sK (32, hd + 1) | sV (32, hd), fp32.
// Perf note: K/V reuse is 32 query rows per tile and the math runs on CUDA
// cores; a tensor-core (mma) version is the obvious next step.
constexpr int kPrefillWarps = 8;
constexpr int kPrefillRows = 32;
constexpr int kRowsPerWarp = kPrefillRows / kPrefillWarps;

// Dims per lane (the kernels' DPL) for head_dim 1..256: lane owns d = lane + 32 i, i < DPL.
constexpr int dims_per_lane(int hd) { return hd <= 32 ? 1 : hd <= 64 ? 2 : hd <= 128 ? 4 : 8; }
// Dynamic shared memory of prefill_attention_kernel: sQ | sK | sV, fp32.
constexpr std::size_t prefill_smem_bytes(int hd) {
  return sizeof(float) * (kPrefillRows * hd + kTile * (hd + 1) + kTile * hd);
}

template <class T, int DPL>
__global__ void __launch_bounds__(kPrefillWarps * 32) prefill_attention_kernel(PrefillAttentionParams<T> p) {
  const int seq = blockIdx.z, h = blockIdx.y;
  const int start = p.cu_seqlens[seq];
  const int len = p.cu_seqlens[seq + 1] - start;
  const int q0 = blockIdx.x * kPrefillRows;
  if (q0 >= len) return;  // whole block exits: no barrier is skipped
  const int hd = p.head_dim;
  const int kvh = h / (p.heads / p.kv_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int nq = min(kPrefillRows, len - q0);  // valid query rows in this block
  const PrefillKeys keys = prefill_keys(p, seq, start, len);
  const int kv_end = keys.prefix + q0 + nq;    // causal: keys [0, prefix + q0 + nq)

  PDSIM_DYNAMIC_SHARED(float4, smem4);  // float4: 16-byte aligned
  float* smem = reinterpret_cast<float*>(smem4);
  float* sQ = smem;                       // (kPrefillRows, hd)
  float* sK = sQ + kPrefillRows * hd;     // (kTile, hd + 1)
  float* sV = sK + kTile * (hd + 1);      // (kTile, hd)
  __shared__ long long offs[kTile];

  // q is (T, heads, hd): row (start + q0 + r, h).
  if (threadIdx.x < kPrefillRows)
    offs[threadIdx.x] = static_cast<int>(threadIdx.x) < nq ? (static_cast<long long>(start + q0 + threadIdx.x) * p.heads + h) * hd : -1;
  __syncthreads();
  load_rows(sQ, hd, p.q, offs, kPrefillRows, hd, p.scale * kLog2e);

  RowState<DPL> st[kRowsPerWarp];
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) st[i].init();

  for (int k0 = 0; k0 < kv_end; k0 += kTile) {
    __syncthreads();  // previous tile (and offs) fully consumed; sQ written
    // k, v are (Tk, kv_heads, hd): row (keys.start + k0 + j, kvh).
    if (threadIdx.x < kTile) {
      const int j = k0 + threadIdx.x;
      offs[threadIdx.x] = j < kv_end ? (static_cast<long long>(keys.start + j) * p.kv_heads + kvh) * hd : -1;
    }
    __syncthreads();
    load_rows(sK, hd + 1, p.k, offs, kTile, hd, 1.f);
    load_rows(sV, hd, p.v, offs, kTile, hd, 1.f);
    __syncthreads();
    const float* qr[kRowsPerWarp];
    int n_valid[kRowsPerWarp];
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int r = i * kPrefillWarps + warp;
      qr[i] = sQ + r * hd;
      // causal: keys k0 .. prefix + q0 + r (none of this tile for an early row after a prefix)
      n_valid[i] = r < nq ? max(0, min(kTile, keys.prefix + q0 + r - k0 + 1)) : 0;
    }
    attend_tile_rows(st, qr, n_valid, sK, sV, hd, lane);
  }

  // out is (T, heads, hd).
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int r = i * kPrefillWarps + warp;
    if (r >= nq) continue;
    const float inv = 1.f / st[i].l;  // l >= 1: the row's max key contributes exp2(0)
    T* o = p.out + (static_cast<long long>(start + q0 + r) * p.heads + h) * hd;
#pragma unroll
    for (int c = 0; c < DPL; ++c) {
      const int d = lane + 32 * c;
      if (d < hd) o[d] = from_f32<T>(st[i].acc[c] * inv);
    }
  }
}

// ----------------------------------------------------------------- decode ---
// Pass 1 (shared-memory kernel): grid (num_splits, kv_heads, batch); block
// kDecodeWarps warps. A block owns context tokens [split * split_tokens, ...)
// of one (sequence, kv head) and all `group` query heads that share the kv head
// (each K/V tile is read from HBM once per group). Warp w owns group rows w,
// w + 4, ... (< ROWS*4). Shared: sQ (group, hd) | sK (32, hd + 1) | sV (32, hd), fp32.
constexpr int kDecodeWarps = 4;

// Rows per warp (the kernel's ROWS: 1, 2, 4 or 8) for group = heads / kv_heads in 1..32.
constexpr int decode_rows_per_warp(int group) {
  const int rows = (group + kDecodeWarps - 1) / kDecodeWarps;
  return rows <= 1 ? 1 : rows <= 2 ? 2 : rows <= 4 ? 4 : 8;
}
// Dynamic shared memory of decode_attention_kernel: sQ | sK | sV, fp32.
constexpr std::size_t decode_smem_bytes(int group, int hd) {
  return sizeof(float) * (group * hd + kTile * (hd + 1) + kTile * hd);
}

template <class T, int DPL, int ROWS>
__global__ void __launch_bounds__(kDecodeWarps * 32) decode_attention_kernel(DecodeAttentionParams<T> p) {
  const int split = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
  const int hd = p.head_dim;
  const int group = p.heads / p.kv_heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const bool split_mode = p.num_splits > 1;
  const TokenRange tokens = decode_split_tokens(p, b, split);
  const int t_begin = tokens.begin, t_end = tokens.end;
  const int h0 = kvh * group;  // first query head of this kv head

  if (t_begin >= t_end) {  // empty split (or empty context); whole block
    write_empty_split(p, b, h0, group, split);
    return;
  }

  PDSIM_DYNAMIC_SHARED(float4, smem4);  // float4: 16-byte aligned
  float* smem = reinterpret_cast<float*>(smem4);
  float* sQ = smem;                  // (group, hd)
  float* sK = sQ + group * hd;       // (kTile, hd + 1)
  float* sV = sK + kTile * (hd + 1); // (kTile, hd)
  __shared__ long long offs[kTile];

  // q is (B, heads, hd); the group's heads h0 .. h0 + group - 1 are contiguous.
  {
    const T* qg = p.q + (static_cast<long long>(b) * p.heads + h0) * hd;
    const float mul = p.scale * kLog2e;
    for (int i = threadIdx.x; i < group * hd; i += blockDim.x) sQ[i] = to_f32(qg[i]) * mul;
  }

  RowState<DPL> st[ROWS];
#pragma unroll
  for (int i = 0; i < ROWS; ++i) st[i].init();

  const std::int32_t* table = p.block_table + static_cast<long long>(b) * p.max_blocks_per_seq;
  for (int t0 = t_begin; t0 < t_end; t0 += kTile) {
    // No barrier before writing offs: the last tile's loads read it before
    // the barrier that precedes its attend, and sK/sV are rewritten only after
    // the next barrier, which every warp reaches once done attending.
    // k/v cache is (num_blocks, block_tokens, kv_heads, hd): token t lives at
    // (table[t / block_tokens], t % block_tokens).
    if (threadIdx.x < kTile) {
      const int t = t0 + threadIdx.x;
      long long off = -1;
      if (t < t_end) {
        const long long slot = static_cast<long long>(table[t / p.block_tokens]) * p.block_tokens + t % p.block_tokens;
        off = (slot * p.kv_heads + kvh) * hd;
      }
      offs[threadIdx.x] = off;
    }
    __syncthreads();
    load_rows(sK, hd + 1, p.k_cache, offs, kTile, hd, 1.f);
    load_rows(sV, hd, p.v_cache, offs, kTile, hd, 1.f);
    __syncthreads();
    const int n = min(kTile, t_end - t0);
    const float* qr[ROWS];
    int n_valid[ROWS];
#pragma unroll
    for (int i = 0; i < ROWS; ++i) {
      const int r = i * kDecodeWarps + warp;
      qr[i] = sQ + (r < group ? r : 0) * hd;  // rows past the group read row 0, unused
      n_valid[i] = r < group ? n : 0;
    }
    attend_tile_rows(st, qr, n_valid, sK, sV, hd, lane);
  }

#pragma unroll
  for (int i = 0; i < ROWS; ++i) {
    const int r = i * kDecodeWarps + warp;
    if (r >= group) continue;
    const long long bh = static_cast<long long>(b) * p.heads + h0 + r;
    if (split_mode) {
      // partial_acc (B, heads, splits, hd); partial_max/sum (B, heads, splits).
      const long long idx = bh * p.num_splits + split;
#pragma unroll
      for (int c = 0; c < DPL; ++c) {
        const int d = lane + 32 * c;
        if (d < hd) p.partial_acc[idx * hd + d] = st[i].acc[c];
      }
      if (lane == 0) {
        p.partial_max[idx] = st[i].m;
        p.partial_sum[idx] = st[i].l;
      }
    } else {
      const float inv = 1.f / st[i].l;
#pragma unroll
      for (int c = 0; c < DPL; ++c) {
        const int d = lane + 32 * c;
        if (d < hd) p.out[bh * hd + d] = from_f32<T>(st[i].acc[c] * inv);
      }
    }
  }
}

}  // namespace pdsim::kernels::cuda::simt
