// CPU backend: float32 kernels on host memory with Eigen. GEMMs use Eigen's
// blocked GEMM (multi-threaded when built with OpenMP); attention, RoPE, norms
// and the MLP activation split their outer loop (sequence x head, rows) over
// OpenMP threads. Layouts and semantics: kernels/backend.h.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <limits>
#include <thread>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <unistd.h>

#include <Eigen/Dense>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/backend.h"
#include "kernels/check.h"

namespace pdsim::kernels {
namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using CMap = Eigen::Map<const RowMat, 0, Eigen::OuterStride<>>;
using MMap = Eigen::Map<RowMat, 0, Eigen::OuterStride<>>;

float bf16_to_f32(std::uint16_t b) {
  const std::uint32_t u = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
std::uint16_t f32_to_bf16(float f) {  // round to nearest even; NaN stays NaN
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

const float* f32(const Tensor* t, const char* what) {
  PDSIM_KCHECK(t && t->data() && t->dtype() == DType::kF32, std::string(what) + " must be a float32 tensor");
  return t->as<float>();
}
float* f32m(Tensor* t, const char* what) { return const_cast<float*>(f32(t, what)); }
const std::int32_t* i32(const Tensor* t, const char* what) {
  PDSIM_KCHECK(t && t->data() && t->dtype() == DType::kI32, std::string(what) + " must be an int32 tensor");
  return t->as<std::int32_t>();
}
void need(const Tensor* t, std::int64_t elems, const char* what) {
  PDSIM_KCHECK(t->numel() >= elems, std::string(what) + " is smaller than the shape arguments say");
}

// Softmax of the first `valid` entries of row r of s (the rest set to 0).
template <class M>
void softmax_row(M& s, Eigen::Index r, Eigen::Index valid) {
  float mx = -std::numeric_limits<float>::infinity();
  for (Eigen::Index j = 0; j < valid; ++j) mx = std::max(mx, s(r, j));
  float sum = 0;
  for (Eigen::Index j = 0; j < valid; ++j) {
    const float e = std::exp(s(r, j) - mx);
    s(r, j) = e;
    sum += e;
  }
  const float inv = 1.0f / sum;
  for (Eigen::Index j = 0; j < valid; ++j) s(r, j) *= inv;
  for (Eigen::Index j = valid; j < s.cols(); ++j) s(r, j) = 0;
}

std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      auto p = line.find(':');
      if (p != std::string::npos) return line.substr(p + 2);
    }
  return "unknown CPU";
}

int default_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

class CpuBackend final : public Backend {
 public:
  static constexpr std::int64_t kGemvRows = 8;
  explicit CpuBackend(int threads) : nt_(threads > 0 ? threads : default_threads()) {
    // Eigen's thread count is process-wide; writing it per call raced between
    // backends with different counts. It is set to 1 once, and each backend
    // parallelises its own GEMMs over output columns with nt_ threads.
    static std::once_flag eigen_single_threaded;
    std::call_once(eigen_single_threaded, [] { Eigen::setNbThreads(1); });
    // Eigen's products and the attention score tiles allocate temporaries per
    // call. glibc serves those from fresh mappings or from the heap depending
    // on what was freed before (its mmap threshold moves), and fresh mappings
    // page-fault inside the timed op: fixing the thresholds (process-wide)
    // keeps such temporaries in the heap, reused, whatever ran before.
#if defined(__GLIBC__)
    static std::once_flag malloc_thresholds;
    std::call_once(malloc_thresholds, [] {
      mallopt(M_MMAP_THRESHOLD, 32 << 20);   // the largest glibc accepts on 64-bit
      mallopt(M_TRIM_THRESHOLD, 512 << 20);  // do not hand the heap top back between calls
    });
#endif
  }
  std::string name() const override { return "cpu"; }
  std::string device() const override {
    return cpu_model_name() + ", " + std::to_string(nt_) + " of " +
           std::to_string(std::thread::hardware_concurrency()) + " threads, Eigen " +
           std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
           std::to_string(EIGEN_MINOR_VERSION) + ", float32" +
#ifdef _OPENMP
           ", OpenMP";
#else
           ", single-threaded";
#endif
  }
  DType compute_dtype() const override { return DType::kF32; }
  double free_memory_bytes() const override {
    std::ifstream f("/proc/meminfo");
    std::string key;
    double kib = 0;
    while (f >> key >> kib) {
      if (key == "MemAvailable:") return kib * 1024.0;
      f.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
    }
    // No /proc/meminfo: what sysconf calls available (excludes the page cache, so low).
    return static_cast<double>(sysconf(_SC_AVPHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
  }

  void upload(Tensor& dst, const float* src) override {
    const auto n = dst.numel();
    if (dst.dtype() == DType::kF32) {
      std::memcpy(dst.data(), src, static_cast<std::size_t>(n) * 4);
    } else {
      PDSIM_KCHECK(dst.dtype() == DType::kBF16, "upload of floats into an int32 tensor");
      auto* d = dst.as<std::uint16_t>();
      for (std::int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
    }
  }
  void upload_i32(Tensor& dst, const std::int32_t* src) override {
    PDSIM_KCHECK(dst.dtype() == DType::kI32, "upload_i32 into a float tensor");
    std::memcpy(dst.data(), src, static_cast<std::size_t>(dst.numel()) * 4);
  }
  void download(const Tensor& src, float* dst) override {
    const auto n = src.numel();
    if (src.dtype() == DType::kF32) {
      std::memcpy(dst, src.data(), static_cast<std::size_t>(n) * 4);
    } else if (src.dtype() == DType::kBF16) {
      const auto* s = src.as<std::uint16_t>();
      for (std::int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
    } else {
      const auto* s = src.as<std::int32_t>();
      for (std::int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
    }
  }

  // y[m, n] = x[m, k] . w[n, k]^T
  void gemm(const GemmArgs& a) override {
    PDSIM_KCHECK(a.m >= 0 && a.n > 0 && a.k > 0, "bad GEMM shape");
    need(a.x, a.m * a.k, "gemm x");
    need(a.w, a.n * a.k, "gemm w");
    need(a.y, a.m * a.n, "gemm y");
    if (a.m == 0) return;
    CMap x(f32(a.x, "gemm x"), a.m, a.k, Eigen::OuterStride<>(a.k));
    CMap w(f32(a.w, "gemm w"), a.n, a.k, Eigen::OuterStride<>(a.k));
    MMap y(f32m(a.y, "gemm y"), a.m, a.n, Eigen::OuterStride<>(a.n));
    if (a.m <= kGemvRows) {
      // Few rows (decode): stream w once at memory speed; Eigen's blocked
      // GEMM packs w first and runs at about half that rate for m = 2..8.
      // Each row of w is read once and dotted with every row of x (x stays in L1).
#pragma omp parallel for schedule(static) if (a.n * a.k >= (1 << 20)) num_threads(nt_)
      for (std::int64_t j = 0; j < a.n; ++j) {
        const auto wr = w.row(j);
        for (std::int64_t i = 0; i < a.m; ++i) y(i, j) = wr.dot(x.row(i));
      }
      return;
    }
    // Column blocks of y, one per thread (Eigen itself runs single-threaded).
    const std::int64_t blocks = std::min<std::int64_t>(nt_, std::max<std::int64_t>(1, a.n / 64));
#pragma omp parallel for schedule(static) num_threads(static_cast<int>(blocks)) if (blocks > 1)
    for (std::int64_t bi = 0; bi < blocks; ++bi) {
      const std::int64_t j0 = a.n * bi / blocks, j1 = a.n * (bi + 1) / blocks;
      y.middleCols(j0, j1 - j0).noalias() = x * w.middleRows(j0, j1 - j0).transpose();
    }
  }

  void prefill_attention(const PrefillAttentionArgs& a) override {
    PDSIM_KCHECK(a.heads > 0 && a.kv_heads > 0 && a.heads % a.kv_heads == 0 && a.head_dim > 0,
                 "bad attention head layout");
    const float* q = f32(a.q, "q");
    const float* k = f32(a.k, "k");
    const float* v = f32(a.v, "v");
    float* out = f32m(a.out, "out");
    const std::int32_t* cu = i32(a.cu_seqlens, "cu_seqlens");
    need(a.cu_seqlens, a.num_seqs + 1, "cu_seqlens");
    const std::int32_t* cu_k = a.cu_seqlens_k ? i32(a.cu_seqlens_k, "cu_seqlens_k") : cu;
    const std::int64_t total_k = a.cu_seqlens_k ? a.total_k_tokens : a.total_tokens;
    if (a.cu_seqlens_k) need(a.cu_seqlens_k, a.num_seqs + 1, "cu_seqlens_k");
    need(a.q, a.total_tokens * a.heads * a.head_dim, "q");
    need(a.k, total_k * a.kv_heads * a.head_dim, "k");
    need(a.v, total_k * a.kv_heads * a.head_dim, "v");
    need(a.out, a.total_tokens * a.heads * a.head_dim, "out");
    PDSIM_KCHECK(cu[0] == 0 && cu[a.num_seqs] == a.total_tokens, "cu_seqlens do not span total_tokens");
    PDSIM_KCHECK(cu_k[0] == 0 && cu_k[a.num_seqs] == total_k, "cu_seqlens_k do not span total_k_tokens");
    for (int s = 0; s < a.num_seqs; ++s)
      PDSIM_KCHECK(cu_k[s + 1] - cu_k[s] >= cu[s + 1] - cu[s], "a sequence with fewer keys than queries");
    const int hd = a.head_dim, H = a.heads, KH = a.kv_heads, group = H / KH;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const std::int64_t items = static_cast<std::int64_t>(a.num_seqs) * H;
    constexpr int kTile = 64;  // query rows per score tile
    // Threads only for enough work: a fork/join costs microseconds, and far
    // more when another process holds a core.
    const bool par = items > 1 && a.total_tokens * (a.max_seqlen + total_k - a.total_tokens) * H * hd >= (1 << 20);
#pragma omp parallel for schedule(dynamic, 1) if (par) num_threads(nt_)
    for (std::int64_t it = 0; it < items; ++it) {
      const int s = static_cast<int>(it / H), h = static_cast<int>(it % H), kvh = h / group;
      const std::int64_t start = cu[s], n = cu[s + 1] - cu[s];
      const std::int64_t kstart = cu_k[s], nk = cu_k[s + 1] - cu_k[s], prefix = nk - n;
      if (n <= 0) continue;
      CMap Q(q + (start * H + h) * hd, n, hd, Eigen::OuterStride<>(H * hd));
      CMap K(k + (kstart * KH + kvh) * hd, nk, hd, Eigen::OuterStride<>(KH * hd));
      CMap V(v + (kstart * KH + kvh) * hd, nk, hd, Eigen::OuterStride<>(KH * hd));
      MMap O(out + (start * H + h) * hd, n, hd, Eigen::OuterStride<>(H * hd));
      RowMat S;
      for (std::int64_t q0 = 0; q0 < n; q0 += kTile) {
        const std::int64_t qb = std::min<std::int64_t>(kTile, n - q0), kend = prefix + q0 + qb;
        S.noalias() = (Q.middleRows(q0, qb) * K.topRows(kend).transpose()) * scale;
        for (std::int64_t i = 0; i < qb; ++i) softmax_row(S, i, prefix + q0 + i + 1);
        O.middleRows(q0, qb).noalias() = S * V.topRows(kend);
      }
    }
  }

  void decode_attention(const DecodeAttentionArgs& a) override {
    PDSIM_KCHECK(a.heads > 0 && a.kv_heads > 0 && a.heads % a.kv_heads == 0 && a.head_dim > 0 && a.block_tokens > 0,
                 "bad attention layout");
    const float* q = f32(a.q, "q");
    const float* kc = f32(a.k_cache, "k_cache");
    const float* vc = f32(a.v_cache, "v_cache");
    float* out = f32m(a.out, "out");
    const std::int32_t* bt = i32(a.block_table, "block_table");
    const std::int32_t* lens = i32(a.context_lens, "context_lens");
    const int hd = a.head_dim, H = a.heads, KH = a.kv_heads, group = H / KH, B = a.block_tokens;
    need(a.q, static_cast<std::int64_t>(a.batch) * H * hd, "q");
    need(a.out, static_cast<std::int64_t>(a.batch) * H * hd, "out");
    need(a.block_table, static_cast<std::int64_t>(a.batch) * a.max_blocks_per_seq, "block_table");
    need(a.context_lens, a.batch, "context_lens");
    const std::int64_t num_blocks = a.k_cache->numel() / (static_cast<std::int64_t>(B) * KH * hd);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const std::int64_t items = static_cast<std::int64_t>(a.batch) * KH;
    bool bad = false;
    const bool par = items > 1 && static_cast<std::int64_t>(a.batch) * a.max_context_len * H * hd >= (1 << 20);
#pragma omp parallel for schedule(dynamic, 1) reduction(|| : bad) if (par) num_threads(nt_)
    for (std::int64_t it = 0; it < items; ++it) {
      const int b = static_cast<int>(it / KH), kvh = static_cast<int>(it % KH);
      const std::int64_t ctx = lens[b];
      const std::int64_t nblk = (ctx + B - 1) / B;
      if (ctx <= 0 || nblk > a.max_blocks_per_seq) {
        bad = true;
        continue;
      }
      CMap Qg(q + (static_cast<std::int64_t>(b) * H + kvh * group) * hd, group, hd, Eigen::OuterStride<>(hd));
      MMap Og(out + (static_cast<std::int64_t>(b) * H + kvh * group) * hd, group, hd, Eigen::OuterStride<>(hd));
      RowMat S(group, ctx);
      for (std::int64_t i = 0; i < nblk; ++i) {
        const std::int64_t blk = bt[static_cast<std::int64_t>(b) * a.max_blocks_per_seq + i];
        if (blk < 0 || blk >= num_blocks) {
          bad = true;
          break;
        }
        const std::int64_t t0 = i * B, nt = std::min<std::int64_t>(B, ctx - t0);
        CMap Kb(kc + (blk * B * KH + kvh) * hd, nt, hd, Eigen::OuterStride<>(KH * hd));
        S.middleCols(t0, nt).noalias() = (Qg * Kb.transpose()) * scale;
      }
      if (bad) continue;
      for (int g = 0; g < group; ++g) softmax_row(S, g, ctx);
      Og.setZero();
      for (std::int64_t i = 0; i < nblk; ++i) {
        const std::int64_t blk = bt[static_cast<std::int64_t>(b) * a.max_blocks_per_seq + i];
        const std::int64_t t0 = i * B, nt = std::min<std::int64_t>(B, ctx - t0);
        CMap Vb(vc + (blk * B * KH + kvh) * hd, nt, hd, Eigen::OuterStride<>(KH * hd));
        Og.noalias() += S.middleCols(t0, nt) * Vb;
      }
    }
    PDSIM_KCHECK(!bad, "decode attention: a context length or block index is out of range");
  }

  void kv_append(const KvAppendArgs& a) override {
    const float* k = f32(a.k, "k");
    const float* v = f32(a.v, "v");
    float* kc = f32m(a.k_cache, "k_cache");
    float* vc = f32m(a.v_cache, "v_cache");
    const std::int32_t* slots = i32(a.slot_mapping, "slot_mapping");
    const std::int64_t row = static_cast<std::int64_t>(a.kv_heads) * a.head_dim;
    const std::int64_t slots_total = a.k_cache->numel() / row;
    need(a.k, a.tokens * row, "k");
    need(a.v, a.tokens * row, "v");
    need(a.slot_mapping, a.tokens, "slot_mapping");
    for (std::int64_t t = 0; t < a.tokens; ++t) {
      const std::int64_t s = slots[t];
      PDSIM_KCHECK(s >= 0 && s < slots_total, "kv_append: slot out of range");
      std::memcpy(kc + s * row, k + t * row, static_cast<std::size_t>(row) * 4);
      std::memcpy(vc + s * row, v + t * row, static_cast<std::size_t>(row) * 4);
    }
  }

  void rmsnorm(const RmsNormArgs& a) override {
    const float* x = f32(a.x, "x");
    const float* w = f32(a.weight, "weight");
    float* out = f32m(a.out, "out");
    float* res = a.residual ? f32m(a.residual, "residual") : nullptr;
    need(a.x, a.rows * a.hidden, "x");
    need(a.out, a.rows * a.hidden, "out");
    if (res) need(a.residual, a.rows * a.hidden, "residual");
    const int h = a.hidden;
    Eigen::Map<const Eigen::ArrayXf> wa(w, h);
#pragma omp parallel for schedule(static) if (a.rows * h >= (1 << 18)) num_threads(nt_)
    for (std::int64_t r = 0; r < a.rows; ++r) {
      const float* in = x + r * h;
      if (res) {  // the fused residual add: the norm reads the sum it just stored
        Eigen::Map<Eigen::ArrayXf>(res + r * h, h) += Eigen::Map<const Eigen::ArrayXf>(in, h);
        in = res + r * h;
      }
      Eigen::Map<const Eigen::ArrayXf> xr(in, h);
      Eigen::Map<Eigen::ArrayXf> yr(out + r * h, h);
      const float inv = 1.0f / std::sqrt(xr.square().mean() + a.eps);
      yr = xr * inv * wa;
    }
  }

  void rope(const RopeArgs& a) override {
    float* q = f32m(a.q, "q");
    float* k = f32m(a.k, "k");
    const std::int32_t* pos = i32(a.positions, "positions");
    PDSIM_KCHECK(a.head_dim % 2 == 0, "RoPE needs an even head_dim");
    need(a.q, a.tokens * a.heads * a.head_dim, "q");
    need(a.k, a.tokens * a.kv_heads * a.head_dim, "k");
    need(a.positions, a.tokens, "positions");
    const int hd = a.head_dim, half = hd / 2;
    std::int32_t max_pos = 0;
    for (std::int64_t t = 0; t < a.tokens; ++t) {
      PDSIM_KCHECK(pos[t] >= 0, "RoPE position < 0");
      max_pos = std::max(max_pos, pos[t]);
    }
    const RopeTable& table = rope_table(a.theta, hd, max_pos);
#pragma omp parallel for schedule(static) if (a.tokens * (a.heads + a.kv_heads) * hd >= (1 << 18)) num_threads(nt_)
    for (std::int64_t t = 0; t < a.tokens; ++t) {
      const float* cs = table.cos.data() + static_cast<std::size_t>(pos[t]) * half;
      const float* sn = table.sin.data() + static_cast<std::size_t>(pos[t]) * half;
      auto rot = [&](float* x) {
        for (int i = 0; i < half; ++i) {
          const float x0 = x[i], x1 = x[i + half];
          x[i] = x0 * cs[i] - x1 * sn[i];
          x[i + half] = x1 * cs[i] + x0 * sn[i];
        }
      };
      for (int h = 0; h < a.heads; ++h) rot(q + (t * a.heads + h) * hd);
      for (int h = 0; h < a.kv_heads; ++h) rot(k + (t * a.kv_heads + h) * hd);
    }
  }

  void silu_gate(const SiluGateArgs& a) override {
    const float* g = f32(a.gate_up, "gate_up");
    float* out = f32m(a.out, "out");
    need(a.gate_up, a.rows * 2 * a.ffn, "gate_up");
    need(a.out, a.rows * a.ffn, "out");
    const int f = a.ffn;
#pragma omp parallel for schedule(static) if (a.rows * f >= (1 << 18)) num_threads(nt_)
    for (std::int64_t r = 0; r < a.rows; ++r) {
      Eigen::Map<const Eigen::ArrayXf> gate(g + r * 2 * f, f), up(g + r * 2 * f + f, f);
      Eigen::Map<Eigen::ArrayXf> y(out + r * f, f);
      y = gate / (1.0f + (-gate).exp()) * up;
    }
  }

  void copy_columns(const CopyColumnsArgs& a) override {
    PDSIM_KCHECK(a.rows >= 0 && a.cols >= 0 && a.col0 >= 0 && a.col0 + a.cols <= a.src_cols,
                 "copy_columns: the column range is outside the source rows");
    const float* src = f32(a.src, "copy_columns src");
    float* dst = f32m(a.dst, "copy_columns dst");
    need(a.src, a.rows * a.src_cols, "copy_columns src");
    need(a.dst, a.rows * a.cols, "copy_columns dst");
#pragma omp parallel for schedule(static) if (a.rows * a.cols >= (1 << 18)) num_threads(nt_)
    for (std::int64_t r = 0; r < a.rows; ++r)
      std::memcpy(dst + r * a.cols, src + r * a.src_cols + a.col0, static_cast<std::size_t>(a.cols) * sizeof(float));
  }

  void copy(Tensor& dst, const Tensor& src) override {
    PDSIM_KCHECK(dst.dtype() == src.dtype() && dst.numel() == src.numel(),
                 "copy: dst and src differ in dtype or element count");
    const auto* from = static_cast<const char*>(src.data());
    auto* to = static_cast<char*>(dst.data());
    const std::int64_t bytes = static_cast<std::int64_t>(src.bytes()), chunk = 1 << 20;
    const std::int64_t chunks = (bytes + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (bytes >= 4 * chunk) num_threads(nt_)
    for (std::int64_t c = 0; c < chunks; ++c)
      std::memcpy(to + c * chunk, from + c * chunk, static_cast<std::size_t>(std::min(chunk, bytes - c * chunk)));
  }

  void synchronize() override {}
  void timer_start() override { t0_ = std::chrono::steady_clock::now(); }
  double timer_stop_s() override {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

 protected:
  void* raw_allocate(std::size_t bytes) override {
    // 64-byte aligned for vector loads.
    const std::size_t rounded = (bytes + 63) / 64 * 64;
    return std::aligned_alloc(64, rounded);
  }
  void raw_free(void* p) override { std::free(p); }

 private:
  // cos/sin of pos * theta^(-2i/hd) for every position up to the largest seen
  // ([position][i], formed in fp64, stored as float), as serving engines keep
  // a cos_sin_cache: RoPE is then a lookup whose cost does not depend on the
  // positions (computing them per call made a decode token's RoPE several
  // times dearer than a prompt's first tokens, which the profile sweep times).
  struct RopeTable {
    float theta = 0;
    int head_dim = 0;
    std::int64_t positions = 0;
    std::vector<float> cos, sin;
  };
  const RopeTable& rope_table(float theta, int hd, std::int32_t max_pos) {
    RopeTable& r = rope_table_;
    if (r.theta != theta || r.head_dim != hd) r = RopeTable{theta, hd, 0, {}, {}};
    if (max_pos < r.positions) return r;
    const int half = hd / 2;
    // Grown geometrically from 8192 positions so that decode steps, whose
    // positions creep up by one, rarely pay for a (timed) extension.
    const std::int64_t n = std::max<std::int64_t>({max_pos + 1, 2 * r.positions, 8192});
    r.cos.resize(static_cast<std::size_t>(n * half));
    r.sin.resize(r.cos.size());
    for (int i = 0; i < half; ++i) {
      const double inv_freq = std::pow(static_cast<double>(theta), -2.0 * i / hd);
      for (std::int64_t p = r.positions; p < n; ++p) {
        const double ang = static_cast<double>(p) * inv_freq;
        r.cos[static_cast<std::size_t>(p * half + i)] = static_cast<float>(std::cos(ang));
        r.sin[static_cast<std::size_t>(p * half + i)] = static_cast<float>(std::sin(ang));
      }
    }
    r.positions = n;
    return r;
  }

  int nt_;
  RopeTable rope_table_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int threads) { return std::make_unique<CpuBackend>(threads); }

}  // namespace pdsim::kernels
