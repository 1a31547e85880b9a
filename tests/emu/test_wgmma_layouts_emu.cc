// The Hopper wgmma prefill kernel (kernels/cuda/prefill_attention_sm90.cu),
// replayed on the host. Its device code is inline PTX (wgmma, cp.async,
// fences), which no host compiler runs, so this test cannot compile the
// kernel body the way tests/emu/test_decode_regs_emu.cc does. Instead it
// replays the kernel's algorithm step by step through the kernel's own
// constexpr helpers (prefill_attention_sm90.cuh: tile offsets, swizzled chunk
// addresses, descriptors, accumulator and A-fragment indices, P packing, the
// causal mask) and runs each wgmma on an independent model of the hardware.
//
// The model (the oracle; it shares no code with the helpers) is written from
// the PTX ISA ("Asynchronous Warpgroup Level Matrix Shared Memory Layout",
// "Matrix Descriptor Format") and CUTLASS (cute/atom/mma_traits_sm90_gmma.hpp):
// descriptor bit fields, the 128-byte swizzle on absolute shared addresses
// (Swizzle<3,4,3>), the canonical K-major and MN-major layouts, and the
// m64nN accumulator / m64k16 register-A layouts (CLayout_64xN, ALayout_64x16).
// It checks that every operand address is inside the allocation and every
// 16-byte copy aligned, and that every output element is written once.
//
// What this cannot check: that the hardware matches the documents (a misread
// of the PTX ISA would be in both the model and the kernel), the asynchronous
// parts (cp.async groups, wgmma fences and commit/wait, the barriers between
// the two warpgroups and the stage they free), timing, and the PTX strings
// themselves. Planted layout bugs (the negative controls) show the model
// tells a right layout from a wrong one.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "kernels/cuda/prefill_attention_sm90.cuh"
#include "kernels/reference.h"

namespace {

using namespace pdsim::kernels::cuda::sm90;

// Broken rules of the model; the first few are kept as messages.
struct Faults {
  long count = 0;
  std::vector<std::string> first;
  void add(const std::string& msg) {
    if (count++ < 5) first.push_back(msg);
  }
};
#define MODEL_EXPECT(faults, cond, msg)            \
  do {                                             \
    if (!(cond)) (faults).add(std::string(msg));   \
  } while (0)

std::uint16_t f2bf(float f) {  // round to nearest even (no NaN inputs here)
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}
float bf2f(std::uint16_t b) {
  const std::uint32_t u = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ---- the hardware model (independent of the kernel's helpers) ----

// wgmma shared-memory descriptor fields: start address, LBO, SBO (bytes),
// base offset, layout type (1: 128-byte swizzle).
struct Desc {
  std::uint32_t start, lbo, sbo, base_off, layout;
};
Desc decode(std::uint64_t d) {
  Desc r;
  r.start = static_cast<std::uint32_t>(d & 0x3FFF) << 4;
  r.lbo = static_cast<std::uint32_t>((d >> 16) & 0x3FFF) << 4;
  r.sbo = static_cast<std::uint32_t>((d >> 32) & 0x3FFF) << 4;
  r.base_off = static_cast<std::uint32_t>((d >> 49) & 7);
  r.layout = static_cast<std::uint32_t>(d >> 62);
  return r;
}
// 128-byte swizzle on the absolute shared address: bits [4,7) ^= bits [7,10).
std::uint32_t swz128(std::uint32_t a) { return a ^ (((a >> 7) & 7u) << 4); }

// Shared memory as bytes, with which tile last wrote each byte.
struct Smem {
  std::vector<std::uint8_t> bytes;
  std::vector<int> written;  // tile id, or -1
  Faults* faults;
  Smem(std::size_t n, Faults* f) : bytes(n, 0xFF), written(n, -1), faults(f) {}
  float bf(std::uint32_t addr) const {
    if (addr % 2 != 0 || addr + 1 >= bytes.size()) {
      faults->add("shared read at " + std::to_string(addr) + " is odd or outside the allocation");
      return NAN;
    }
    std::uint16_t b;
    std::memcpy(&b, &bytes[addr], 2);
    return bf2f(b);
  }
};

// K-major, 128B swizzle, bf16 (CUTLASS canonical, 8 elements per 16 bytes):
// row mn % 8 of an 8-row atom at 128 bytes, atoms SBO apart, k contiguous.
std::uint32_t kmajor_addr(const Desc& d, int mn, int k, Faults& f) {
  MODEL_EXPECT(f, d.layout == 1 && d.base_off == 0, "K-major descriptor: not 128B swizzle or base offset != 0");
  const std::uint32_t logical = d.start + (mn % 8) * 128 + (mn / 8) * d.sbo + (k / 8) * 16 + (k % 8) * 2;
  return swz128(logical);
}
// MN-major, 128B swizzle: 64 mn-elements per 128-byte row, 64-column panels
// LBO apart; k rows at 128 bytes, 8-row groups SBO apart.
std::uint32_t mnmajor_addr(const Desc& d, int mn, int k, Faults& f) {
  MODEL_EXPECT(f, d.layout == 1 && d.base_off == 0, "MN-major descriptor: not 128B swizzle or base offset != 0");
  const std::uint32_t logical = d.start + (mn % 64) * 2 + (mn / 64) * d.lbo + (k % 8) * 128 + (k / 8) * d.sbo;
  return swz128(logical);
}
// CUTLASS CLayout_64xN (and ALayout_64x16 with k for n): (thread t, value v) -> (m, n).
void frag_mn(int t, int v, int& m, int& n) {
  const int t0 = t % 4, t1 = (t / 4) % 8, t2 = t / 32;
  const int v0 = v % 2, v1 = (v / 2) % 2, v2 = v / 4;
  const int lin = t0 * 128 + t1 * 1 + t2 * 16 + v0 * 64 + v1 * 8 + v2 * 512;
  m = lin % 64;
  n = lin / 64;
}

using Frag = std::vector<std::vector<float>>;  // [thread 0..127][value]

// wgmma m64nNk16, A and B K-major from shared memory: d (= or +=) A B^T.
void wgmma_ss(const Smem& sm, Frag& d, int N, std::uint64_t da, std::uint64_t db, bool accumulate, Faults& f) {
  const Desc a = decode(da), b = decode(db);
  std::vector<double> D(64 * N, 0.0);
  for (int m = 0; m < 64; ++m)
    for (int n = 0; n < N; ++n) {
      double s = 0;
      for (int k = 0; k < 16; ++k) s += double(sm.bf(kmajor_addr(a, m, k, f))) * sm.bf(kmajor_addr(b, n, k, f));
      D[m * N + n] = s;
    }
  for (int t = 0; t < 128; ++t)
    for (int v = 0; v < N / 2; ++v) {
      int m, n;
      frag_mn(t, v, m, n);
      d[t][v] = static_cast<float>((accumulate ? d[t][v] : 0.0) + D[m * N + n]);
    }
}
// wgmma m64nNk16 with A (bf16 pairs) from registers and B MN-major (transposed): d += A B.
void wgmma_rs_tb(const Smem& sm, Frag& d, int N, const std::vector<std::array<std::uint32_t, 4>>& a,
                 std::uint64_t db, Faults& f) {
  const Desc b = decode(db);
  std::vector<double> A(64 * 16, NAN);
  for (int t = 0; t < 128; ++t)
    for (int v = 0; v < 8; ++v) {
      int m, k;
      frag_mn(t, v, m, k);
      const std::uint32_t reg = a[t][v / 2];
      A[m * 16 + k] = bf2f(static_cast<std::uint16_t>(v % 2 ? reg >> 16 : reg & 0xFFFF));
    }
  for (double x : A) MODEL_EXPECT(f, !std::isnan(x), "register A fragment does not cover m64k16");
  for (int t = 0; t < 128; ++t)
    for (int v = 0; v < N / 2; ++v) {
      int m, n;
      frag_mn(t, v, m, n);
      double s = 0;
      for (int k = 0; k < 16; ++k) s += A[m * 16 + k] * sm.bf(mnmajor_addr(b, n, k, f));
      d[t][v] = static_cast<float>(d[t][v] + s);
    }
}

// ---- the replay: the kernel's steps, through its helpers ----

// Planted bugs (negative controls): each one changes a single index the
// kernel computes and must make the replay disagree with the reference.
enum class Plant {
  kNone,
  kPackSwapped,         // P's bf16 pair packed high/low the wrong way round
  kVLboSboSwapped,      // V descriptor with LBO and SBO exchanged (matters at head_dim 128)
  kKStepHalf,           // K's k-step inside a 64-column panel advanced 16 bytes, not 32
  kMaskWrongRow,        // causal mask tested against the other row of the fragment
  kStoreUnswizzled,     // cp.async into a plain row-major tile (no XOR)
};

struct Problem {
  std::vector<int> lens;
  int heads = 0, kv_heads = 0, hd = 0;
  float scale = 0;
  std::vector<std::int32_t> cu, cu_k;  // query rows; key rows (a cached prefix, then the new tokens)
  bool has_prefix = false;
  int max_seqlen = 0;
  std::vector<std::uint16_t> q, k, v;  // bf16 bits: q (T, heads, hd), k/v (Tk, kv_heads, hd)
  std::vector<float> out;              // (T, heads, hd), NaN-poisoned
};

Problem make_problem(const std::vector<int>& lens, int heads, int kv_heads, int hd, std::uint32_t seed,
                     const std::vector<int>& prefix = {}) {
  Problem p;
  p.lens = lens;
  p.heads = heads;
  p.kv_heads = kv_heads;
  p.hd = hd;
  p.scale = 1.f / std::sqrt(static_cast<float>(hd));
  p.cu = {0};
  p.cu_k = {0};
  p.has_prefix = !prefix.empty();
  for (std::size_t i = 0; i < lens.size(); ++i) {
    p.cu.push_back(p.cu.back() + lens[i]);
    p.cu_k.push_back(p.cu_k.back() + lens[i] + (prefix.empty() ? 0 : prefix.at(i)));
  }
  p.max_seqlen = *std::max_element(lens.begin(), lens.end());
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> mag(0.1f, 1.f);
  std::bernoulli_distribution sign(0.5);
  auto fill = [&](std::vector<std::uint16_t>& x, std::size_t n) {
    x.resize(n);
    for (auto& e : x) e = f2bf((sign(rng) ? 1.f : -1.f) * mag(rng));
  };
  const std::size_t T = static_cast<std::size_t>(p.cu.back()), Tk = static_cast<std::size_t>(p.cu_k.back());
  fill(p.q, T * heads * hd);
  fill(p.k, Tk * kv_heads * hd);
  fill(p.v, Tk * kv_heads * hd);
  p.out.assign(T * heads * hd, NAN);
  return p;
}

// The kernel's load_tile_sw128: ROWS x HD bf16 from global (row stride
// `stride` elements) into the swizzled tile at shared address `tile`, rows past
// n_valid as zeros; 16-byte chunks, each thread of the CTA its share.
template <class Cfg, int ROWS>
void load_tile(Smem& sm, std::uint32_t raw_smem, std::uint32_t tile, const std::vector<std::uint16_t>& g,
               long long src, long long stride, int n_valid, int tile_id, Plant plant, Faults& f) {
  constexpr int kChunks = Cfg::HD / 8;
  static_assert((ROWS * kChunks) % Cfg::kThreads == 0, "whole chunks per thread");
  for (int thread = 0; thread < Cfg::kThreads; ++thread)
    for (int k = 0; k < ROWS * kChunks / Cfg::kThreads; ++k) {
      const int i = k * Cfg::kThreads + thread;
      const int r = i / kChunks, c8 = i % kChunks;
      const bool ok = r < n_valid;
      const std::uint32_t dst =
          tile + (plant == Plant::kStoreUnswizzled
                      ? static_cast<std::uint32_t>((c8 / 8) * ROWS * 128 + r * 128 + (c8 % 8) * 16)
                      : sw128_chunk_offset(ROWS, r, c8));
      MODEL_EXPECT(f, dst % 16 == 0, "cp.async destination not 16-byte aligned");
      if (dst < raw_smem || dst + 16 > raw_smem + Cfg::kSmemBytes) {
        f.add("cp.async destination outside the allocation");
        continue;
      }
      const long long s = ok ? src + r * stride + c8 * 8 : src;
      MODEL_EXPECT(f, s % 8 == 0, "cp.async source not 16-byte aligned");
      for (int e = 0; e < 8; ++e) {
        const std::uint16_t val = ok ? g[s + e] : 0;
        std::memcpy(&sm.bytes[dst + 2 * e], &val, 2);
        MODEL_EXPECT(f, sm.written[dst + 2 * e] != tile_id, "a tile writes one shared byte twice");
        sm.written[dst + 2 * e] = sm.written[dst + 2 * e + 1] = tile_id;
      }
    }
}

// Runs every CTA of the launch, one at a time, its warpgroups one after the
// other (each reloads the K/V stage it consumes: the emulation has no
// concurrency, so the stage holds what the kernel's barriers guarantee).
// raw_smem: the shared-window address of the dynamic allocation (the kernel
// aligns its base up to 1024 bytes).
// v_split: replay the -DPDSIM_WGMMA_V_SPLIT variant (one m64n64 wgmma per
// 64-column panel of V) whatever this build's Cfg::kVSplit says.
template <class Cfg>
void replay(Problem& p, std::uint32_t raw_smem, Plant plant, bool v_split, Faults& f) {
  constexpr int HD = Cfg::HD, BN = Cfg::BN, BM = Cfg::BM;
  constexpr int kDSteps = HD / 16, kKSteps = BN / 16;
  const int grid_x = (p.max_seqlen + BM - 1) / BM;
  int tile_id = 0;
  for (int seq = 0; seq < static_cast<int>(p.lens.size()); ++seq)
    for (int h = 0; h < p.heads; ++h)
      for (int bx = 0; bx < grid_x; ++bx) {
        const int start = p.cu[seq], len = p.cu[seq + 1] - start;
        const int q0 = (grid_x - 1 - bx) * BM;  // longest (most keys) CTAs first, as the kernel
        if (q0 >= len) continue;
        const int kvh = h / (p.heads / p.kv_heads);
        // The kernel's own key extents (a cached prefix when the problem has one).
        struct {
          const std::int32_t* cu_seqlens_k;
        } key_offsets{p.has_prefix ? p.cu_k.data() : nullptr};
        const pdsim::kernels::cuda::PrefillKeys keys = pdsim::kernels::cuda::prefill_keys(key_offsets, seq, start, len);
        const int kstart = keys.start, klen = keys.len, off = keys.prefix;
        const int kv_end = std::min(klen, off + q0 + BM);
        const int n_tiles = (kv_end + BN - 1) / BN;
        Smem sm(raw_smem + Cfg::kSmemBytes, &f);
        const std::uint32_t base = (raw_smem + 1023u) & ~1023u;
        MODEL_EXPECT(f, base + Cfg::kUsedBytes <= raw_smem + Cfg::kSmemBytes, "tiles overrun the allocation");
        for (std::uint32_t off : {Cfg::kQOffset, Cfg::stage_k_offset(0), Cfg::stage_k_offset(1),
                                  Cfg::stage_v_offset(0), Cfg::stage_v_offset(1)})
          MODEL_EXPECT(f, (base + off) % 1024 == 0, "a tile is not 1024-byte aligned (the swizzle atom)");
        const long long q_stride = static_cast<long long>(p.heads) * HD, kv_stride = static_cast<long long>(p.kv_heads) * HD;
        const long long kv_seq = (static_cast<long long>(kstart) * p.kv_heads + kvh) * HD;
        auto load_kv = [&](int stage, int k0) {
          load_tile<Cfg, BN>(sm, raw_smem, base + Cfg::stage_k_offset(stage), p.k, kv_seq + k0 * kv_stride, kv_stride,
                             klen - k0, ++tile_id, plant, f);
          load_tile<Cfg, BN>(sm, raw_smem, base + Cfg::stage_v_offset(stage), p.v, kv_seq + k0 * kv_stride, kv_stride,
                             klen - k0, ++tile_id, plant, f);
        };
        load_tile<Cfg, BM>(sm, raw_smem, base + Cfg::kQOffset, p.q, (static_cast<long long>(start + q0) * p.heads + h) * HD,
                           q_stride, len - q0, ++tile_id, plant, f);
        load_kv(0, 0);

        for (int wg = 0; wg < Cfg::WGS; ++wg) {
          // Per thread: o (HD / 2 accumulator values), running max / sum of its two rows.
          Frag o(128, std::vector<float>(HD / 2, 0.f));
          std::vector<std::array<float, 2>> m_run(128, {-INFINITY, -INFINITY}), l_run(128, {0.f, 0.f});
          const float scale_log2 = p.scale * 1.4426950408889634f;
          const int wg_row0 = q0 + 64 * wg;
          const bool wg_live = wg_row0 < len;
          for (int it = 0; it < n_tiles; ++it) {
            const int k0 = it * BN;
            if (it > 0 || wg > 0) load_kv(it & 1, k0);  // what stage it & 1 holds while tile it is consumed
            if (!(wg_live && k0 <= off + wg_row0 + 63)) continue;
            const std::uint32_t k_tile = base + Cfg::stage_k_offset(it & 1);
            const std::uint32_t v_tile = base + Cfg::stage_v_offset(it & 1);
            // S = Q K^T over head_dim in k-steps of 16.
            Frag s(128, std::vector<float>(BN / 2, 0.f));
            for (int ks = 0; ks < kDSteps; ++ks) {
              const std::uint64_t da =
                  gmma_desc_sw128(base + Cfg::kQOffset + kmajor_kstep_offset(BM, 64 * wg, ks), kKMajorLbo, kSbo);
              const std::uint32_t k_off = plant == Plant::kKStepHalf ? kmajor_kstep_offset(BN, 0, ks) - (ks % 4) * 16
                                                                     : kmajor_kstep_offset(BN, 0, ks);
              wgmma_ss(sm, s, BN, da, gmma_desc_sw128(k_tile + k_off, kKMajorLbo, kSbo), ks > 0, f);
            }
            // Causal mask on the diagonal tile.
            for (int tid = 0; tid < 128; ++tid)
              if (k0 + BN - 1 > off + wg_row0)
                for (int v = 0; v < BN / 2; ++v)
                  if (k0 + acc_col(tid, v) > off + wg_row0 + acc_row(tid, plant == Plant::kMaskWrongRow ? v ^ 2 : v))
                    s[tid][v] = -INFINITY;
            // Online softmax per row (r = 0: values 4j, 4j+1; r = 1: 4j+2, 4j+3),
            // max over the quad of threads sharing the row (shuffles xor 1, 2).
            for (int r = 0; r < 2; ++r) {
              std::vector<float> mx(128, -INFINITY), mq(128);
              for (int tid = 0; tid < 128; ++tid)
                for (int j = 0; j < BN / 8; ++j)
                  mx[tid] = std::fmax(mx[tid], std::fmax(s[tid][4 * j + 2 * r], s[tid][4 * j + 2 * r + 1]));
              for (int tid = 0; tid < 128; ++tid) {
                const int b4 = tid & ~3;
                mq[tid] = std::fmax(std::fmax(mx[b4], mx[b4 + 1]), std::fmax(mx[b4 + 2], mx[b4 + 3]));
              }
              for (int tid = 0; tid < 128; ++tid) {
                const float m_new = std::fmax(m_run[tid][r], mq[tid] * scale_log2);
                const float m_use = m_new == -INFINITY ? 0.f : m_new;
                const float corr = std::exp2(m_run[tid][r] - m_use);
                m_run[tid][r] = m_new;
                float sum = 0.f;
                for (int j = 0; j < BN / 8; ++j)
                  for (int e = 2 * r; e < 2 * r + 2; ++e) {
                    const float pe = std::exp2(std::fma(s[tid][4 * j + e], scale_log2, -m_use));
                    s[tid][4 * j + e] = pe;
                    sum += pe;
                  }
                l_run[tid][r] = l_run[tid][r] * corr + sum;
                for (int j = 0; j < HD / 8; ++j) {
                  o[tid][4 * j + 2 * r] *= corr;
                  o[tid][4 * j + 2 * r + 1] *= corr;
                }
              }
            }
            // O += P V: P repacked from the accumulator as register A fragments, V MN-major.
            for (int kk = 0; kk < kKSteps; ++kk) {
              std::vector<std::array<std::uint32_t, 4>> pa(128);
              for (int tid = 0; tid < 128; ++tid)
                for (int i = 0; i < 4; ++i) {
                  const std::uint32_t lo = f2bf(s[tid][pa_src(kk, i)]), hi = f2bf(s[tid][pa_src(kk, i) + 1]);
                  pa[tid][i] = plant == Plant::kPackSwapped ? (hi | (lo << 16)) : (lo | (hi << 16));
                }
              if (Cfg::kVSplit || v_split) {
                for (int pn = 0; pn < HD / 64; ++pn) {
                  Frag oq(128, std::vector<float>(32));
                  for (int t = 0; t < 128; ++t)
                    for (int i = 0; i < 32; ++i) oq[t][i] = o[t][32 * pn + i];
                  wgmma_rs_tb(sm, oq, 64, pa,
                              gmma_desc_sw128(v_tile + pn * Cfg::kVPanelBytes + mnmajor_kstep_offset(kk), kSbo, kSbo), f);
                  for (int t = 0; t < 128; ++t)
                    for (int i = 0; i < 32; ++i) o[t][32 * pn + i] = oq[t][i];
                }
              } else {
                const std::uint64_t dv =
                    plant == Plant::kVLboSboSwapped
                        ? gmma_desc_sw128(v_tile + mnmajor_kstep_offset(kk), kSbo, Cfg::kVLbo)
                        : gmma_desc_sw128(v_tile + mnmajor_kstep_offset(kk), Cfg::kVLbo, kSbo);
                wgmma_rs_tb(sm, o, HD, pa, dv, f);
              }
            }
          }
          if (!wg_live) continue;
          // Epilogue: l summed over the quad, rows past the sequence not stored, bf16 pairs.
          for (int tid = 0; tid < 128; ++tid)
            for (int r = 0; r < 2; ++r) {
              const int b4 = tid & ~3;
              const float l = l_run[b4][r] + l_run[b4 + 1][r] + l_run[b4 + 2][r] + l_run[b4 + 3][r];
              const float inv = l > 0.f ? 1.f / l : 0.f;
              const int row = wg_row0 + acc_row(tid, 2 * r);
              if (row >= len) continue;
              const long long orow = (static_cast<long long>(start + row) * p.heads + h) * HD;
              for (int j = 0; j < HD / 8; ++j) {
                const long long at = orow + acc_col(tid, 4 * j + 2 * r);
                MODEL_EXPECT(f, at % 2 == 0, "bf16 pair store not 4-byte aligned");
                MODEL_EXPECT(f, std::isnan(p.out[at]) && std::isnan(p.out[at + 1]), "an output element is written twice");
                p.out[at] = bf2f(f2bf(o[tid][4 * j + 2 * r] * inv));
                p.out[at + 1] = bf2f(f2bf(o[tid][4 * j + 2 * r + 1] * inv));
              }
            }
        }
      }
}

// Out-of-tolerance or unwritten output elements against the float64 reference.
long mismatches(const Problem& p, double* worst) {
  auto to_f = [](const std::vector<std::uint16_t>& x) {
    std::vector<float> y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = bf2f(x[i]);
    return y;
  };
  const std::vector<double> ref =
      pdsim::kernels::ref::prefill_attention(to_f(p.q), to_f(p.k), to_f(p.v), p.cu, p.heads, p.kv_heads, p.hd,
                                             p.has_prefix ? p.cu_k : std::vector<std::int32_t>{});
  long bad = 0;
  *worst = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double err = std::fabs(p.out[i] - ref[i]);
    if (!(err <= 1e-2 + 2e-2 * std::fabs(ref[i]))) ++bad;  // NaN: unwritten
    if (!(err <= *worst)) *worst = err;
  }
  return bad;
}

struct Case {
  std::vector<int> lens;
  int heads, kv_heads, hd;
  std::vector<int> prefix = {};  // cached keys before each sequence's new tokens (empty: none)
};

// Replays one case; returns the output mismatches, the model's faults in *f.
long run_case(const Case& c, std::uint32_t raw_smem, Plant plant, std::uint32_t seed, Faults& f, double* worst,
              bool v_split = false) {
  Problem p = make_problem(c.lens, c.heads, c.kv_heads, c.hd, seed, c.prefix);
  if (c.hd == 64)
    replay<WgmmaPrefill64>(p, raw_smem, plant, v_split, f);
  else
    replay<WgmmaPrefill128>(p, raw_smem, plant, v_split, f);
  return mismatches(p, worst);
}

std::string describe(const Case& c, std::uint32_t raw_smem) {
  std::string s = "hd=" + std::to_string(c.hd) + " heads=" + std::to_string(c.heads) + "/" +
                  std::to_string(c.kv_heads) + " raw_smem=" + std::to_string(raw_smem) + " lens=";
  for (int l : c.lens) s += std::to_string(l) + " ";
  if (!c.prefix.empty()) s += "prefix=";
  for (int x : c.prefix) s += std::to_string(x) + " ";
  return s;
}

}  // namespace

TEST_CASE("cuda kernels emulated: the wgmma layout model agrees with the prefill kernel's swizzle descriptor and fragment helpers") {
  Faults f;
  for (int rows : {64, 128})
    for (int r = 0; r < rows; ++r)
      for (int c8 = 0; c8 < 16; ++c8) {
        INFO("rows=" << rows << " r=" << r << " c8=" << c8);
        // The kernel stores chunk c8 of row r at tile + sw128_chunk_offset; a
        // K-major operand whose descriptor starts at the k-step c8 / 2 reads
        // element (r, 8 (c8 % 2)) there.
        const std::uint32_t tile = 4096;
        const Desc d = decode(gmma_desc_sw128(tile + kmajor_kstep_offset(rows, 0, c8 / 2), kKMajorLbo, kSbo));
        CHECK(kmajor_addr(d, r, (c8 % 2) * 8, f) == tile + sw128_chunk_offset(rows, r, c8));
        // V is stored the same way (row = key): the MN-major operand of k-step
        // r / 16 reads element (n = 8 c8, k = r % 16) there.
        const Desc dv = decode(gmma_desc_sw128(tile + mnmajor_kstep_offset(r / 16), rows * 128, kSbo));
        CHECK(mnmajor_addr(dv, 8 * c8, r % 16, f) == tile + sw128_chunk_offset(rows, r, c8));
      }
  for (int t = 0; t < 128; ++t)
    for (int v = 0; v < 64; ++v) {
      int m, n;
      frag_mn(t, v, m, n);
      INFO("t=" << t << " v=" << v);
      CHECK(m == acc_row(t, v));
      CHECK(n == acc_col(t, v));
    }
  // P's A fragment: register i of k-step kk packs accumulator values
  // pa_src(kk, i), + 1, which the A layout puts at (row, key 16 kk + k).
  for (int t = 0; t < 128; ++t)
    for (int kk = 0; kk < 8; ++kk)
      for (int v = 0; v < 8; ++v) {
        int m, k;
        frag_mn(t, v, m, k);
        const int src = pa_src(kk, v / 2) + v % 2;
        CHECK(acc_row(t, src) == m);
        CHECK(acc_col(t, src) == 16 * kk + k);
      }
  CHECK(f.count == 0);
}

// Ragged causal batches (lengths around the 64-row warpgroup and 128-key tile
// edges), GQA 1, 4, 8, at the allocation offsets 16, 0 and 1040 (the kernel
// aligns its base up to 1024 bytes).
TEST_CASE("cuda kernels emulated: wgmma prefill replay matches the float64 reference over ragged causal GQA batches at head_dim 64 and 128") {
  const std::vector<std::pair<Case, std::uint32_t>> cases = {
      {{{1, 63, 65, 127, 200}, 4, 4, 64}, 16},  {{{1, 63, 65, 127, 200}, 4, 1, 64}, 0},
      {{{1, 63, 65, 127, 200}, 8, 1, 128}, 1040}, {{{130, 257}, 8, 2, 128}, 16},
      {{{300, 5}, 2, 2, 64}, 1040},
      // After a cached prefix (cu_seqlens_k): off the 128-key tile, past it, and 0.
      {{{1, 63, 130, 70}, 4, 1, 64, {200, 0, 1, 128}}, 16}, {{{65, 127}, 8, 2, 128, {129, 63}}, 1040},
  };
  std::uint32_t seed = 1;
  for (const auto& [c, raw] : cases) {
    Faults f;
    double worst = 0;
    const long bad = run_case(c, raw, Plant::kNone, seed++, f, &worst);
    INFO(describe(c, raw) << " worst abs err " << worst);
    INFO("model faults: " << f.count << (f.first.empty() ? "" : " first: " + f.first[0]));
    CHECK(f.count == 0);
    CHECK(bad == 0);
  }
  // The bisecting variant (-DPDSIM_WGMMA_V_SPLIT) at head_dim 128.
  Faults f;
  double worst = 0;
  const Case c{{130, 257}, 8, 2, 128};
  const long bad = run_case(c, 16, Plant::kNone, seed++, f, &worst, /*v_split=*/true);
  INFO("V split: " << describe(c, 16) << " worst abs err " << worst << ", model faults " << f.count);
  CHECK(f.count == 0);
  CHECK(bad == 0);
}

TEST_CASE("cuda kernels emulated: each planted wgmma layout bug makes the replay disagree with the reference") {
  const Case c{{70, 130}, 4, 2, 128};
  std::uint32_t seed = 100;
  {
    Faults f;
    double worst = 0;
    const long bad = run_case(c, 16, Plant::kNone, seed++, f, &worst);
    INFO("without a planted bug: " << bad << " mismatches, " << f.count << " model faults");
    REQUIRE(bad + f.count == 0);
  }
  for (Plant plant : {Plant::kPackSwapped, Plant::kVLboSboSwapped, Plant::kKStepHalf, Plant::kMaskWrongRow,
                      Plant::kStoreUnswizzled}) {
    Faults f;
    double worst = 0;
    const long bad = run_case(c, 16, plant, seed++, f, &worst);
    INFO("plant " << static_cast<int>(plant) << ": " << bad << " mismatches, " << f.count << " model faults");
    CHECK(bad + f.count > 0);
    CHECK(bad > 0);  // wrong numbers, not only a broken model rule
  }
}
