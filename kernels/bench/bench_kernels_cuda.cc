// Benchmarks of the CUDA backend's GEMM, prefill attention and decode
// attention at Llama-3.1-8B and -70B TP1 shapes (one layer). Each reports GPU
// time from CUDA events (UseManualTime) and the napkin-math roofline counters
// beside it:
//   FLOP/s   useful FLOPs / time (causal prefill counts only unmasked pairs)
//   bytes/s  compulsory HBM bytes / time (each operand read once, output
//            written once; bf16 = 2 bytes)
//   flop_per_byte  arithmetic intensity (time-independent)
// Compare with the card's peaks (H100 SXM: ~989 TFLOP/s dense bf16,
// ~3.35 TB/s HBM3) to see how far each kernel is from its roof.
//
// GEMMs report peak_frac = FLOP/s over the measured bf16 dense peak (target
// >= 0.8 at large shapes); decode attention reports bw_frac = bytes/s over the
// measured copy bandwidth (a 1 GiB device-to-device cudaMemcpyAsync, bytes
// read + written, as `pdsim profile` measures it; target >= 0.7 at batch x
// context = 256k tokens).
// Prefill attention also reports TFLOP/s and peak_frac = TFLOP/s over the
// measured bf16 dense peak (best of 10 cuBLAS 8192^3 bf16 GEMMs on this
// device, measured once and printed in the label), for each kernel: kernel=0
// the tensor-core (mma.sync) kernel, kernel=1 the CUDA-core one, kernel=2 the
// Hopper wgmma one (target: peak_frac >= 0.4 at these 4k prompts; it skips
// with the reason where it does not apply: not compute capability 9.0, or no
// sm_90a code in the build), chosen with PDSIM_ATTENTION_KERNEL (mma | simt |
// wgmma; this benchmark sets it and restores it).
// Causal FLOP convention: only unmasked (query, key) pairs count, i.e.
// 4 * heads * head_dim * S * (S + 1) / 2 per sequence of S tokens (half of
// the dense S^2 count, plus the diagonal).
//
//   BM_Gemm/<model>/<proj>/m      y[m, n] = x[m, k] w[n, k]^T; proj in qkv, o,
//                                 gate_up, down; m in {1, 16, 128, 1024, 4096}
//   BM_PrefillAttention/<model>/S/kernel/prefix  prefill of S prompts of 4096 tokens
//                                 (causal); prefix 3584: S chunks of the last 512
//                                 tokens after a 3584-token cached prefix
//                                 (chunked prefill, cu_seqlens_k; mma and wgmma)
//   BM_Elementwise/<model>/op/T   op 0 RMSNorm, 1 residual add, 2 SiLU-gate,
//                                 3 KV append (shuffled slots) at T tokens;
//                                 bw_frac as for decode attention (vLLM's
//                                 kernels on an H100: RMSNorm 4-6 us at 1-256
//                                 tokens, 67 / 125 us at 4096 tokens of the
//                                 8B / 70B, SiLU-gate ~65% of copy bandwidth
//                                 at 4096; vidur-profiling h100 mlp.csv)
//   BM_DecodeAttention/<model>/B/kernel  decode of B sequences, batch x context =
//                                 262144 cached tokens, 16-token blocks,
//                                 shuffled block table; kernel=0 the register
//                                 kernel, kernel=1 the shared-memory one,
//                                 kernel=2 the register kernel with scattered
//                                 scores (5-8 query heads per kv head only: the
//                                 8B shape skips saying why), kernel=3 the
//                                 tensor-core (mma.sync) kernel
//                                 (PDSIM_DECODE_KERNEL = regs | smem |
//                                 regs-scatter | mma; this benchmark sets it
//                                 and restores it)
//
// Without a CUDA build or device every benchmark skips with the reason.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/scoped_env.h"

namespace k = pdsim::kernels;

namespace {

struct ModelShape {
  const char* name;
  int hidden, heads, kv_heads, head_dim, ffn;
};
// TP1 shards = the full model's per-layer shapes.
constexpr ModelShape kModels[] = {
    {"llama-3.1-8b", 4096, 32, 8, 128, 14336},
    {"llama-3.1-70b", 8192, 64, 8, 128, 28672},
};

struct GemmShape {
  const char* name;
  std::int64_t n, k;
};
GemmShape gemm_shape(const ModelShape& m, int which) {
  const std::int64_t qkv = static_cast<std::int64_t>(m.heads + 2 * m.kv_heads) * m.head_dim;
  switch (which) {
    case 0: return {"qkv", qkv, m.hidden};
    case 1: return {"o", m.hidden, static_cast<std::int64_t>(m.heads) * m.head_dim};
    case 2: return {"gate_up", 2LL * m.ffn, m.hidden};
    default: return {"down", m.hidden, m.ffn};
  }
}

// The one CUDA backend of this process (nullptr + reason when there is none).
std::unique_ptr<k::Backend>& backend_slot() {
  static std::unique_ptr<k::Backend> b;
  return b;
}
std::string& why_none() {
  static std::string why;
  return why;
}
k::Backend* backend() {
  static bool tried = false;
  if (!tried) {
    tried = true;
    try {
      backend_slot() = k::make_cuda_backend(&why_none());
    } catch (const std::exception& e) {
      why_none() = e.what();
    }
  }
  return backend_slot().get();
}
bool skip_without_device(benchmark::State& state) {
  if (backend()) return false;
  static std::string msg;
  msg = "no CUDA device: " + why_none();
  state.SkipWithError(msg.c_str());
  return true;
}

// Deterministic, non-zero values in [-0.5, -0.05] U [0.05, 0.5], filled on the device
// (benchmarks never run on zeros; 70B weights are too big to generate on the host).
void fill(k::Backend& b, k::Tensor& t, std::uint32_t salt) { b.fill_random(t, 0.5f, salt); }

void set_counters(benchmark::State& state, double flops, double bytes) {
  using C = benchmark::Counter;
  state.counters["FLOP/s"] = C(flops, C::kIsIterationInvariantRate, C::kIs1000);
  state.counters["bytes/s"] = C(bytes, C::kIsIterationInvariantRate, C::kIs1000);
  state.counters["flop_per_byte"] = C(flops / bytes);
}

// Times `op` with CUDA events, one launch per iteration, after one warm-up.
template <class Op>
void time_loop(benchmark::State& state, k::Backend& b, Op&& op) {
  op();
  b.synchronize();
  for (auto _ : state) {
    b.timer_start();
    op();
    state.SetIterationTime(b.timer_stop_s());
  }
}

// Weights are big (70B gate_up: 0.94 GB): keep the last one across m values.
struct WeightCache {
  int key = -1;
  k::Tensor w;
};
WeightCache& weight_cache() {
  static WeightCache c;
  return c;
}

double measured_bf16_peak_tflops(k::Backend& b);

void BM_Gemm(benchmark::State& state) {
  if (skip_without_device(state)) return;
  auto& b = *backend();
  const ModelShape& model = kModels[state.range(0)];
  const GemmShape g = gemm_shape(model, static_cast<int>(state.range(1)));
  const std::int64_t m = state.range(2);
  try {
    const double peak_tflops = measured_bf16_peak_tflops(b);
    char peak_str[32];
    std::snprintf(peak_str, sizeof peak_str, "%.0f", peak_tflops);
    state.SetLabel(std::string(model.name) + " " + g.name + " m=" + std::to_string(m) + " n=" + std::to_string(g.n) +
                   " k=" + std::to_string(g.k) + " peak=" + peak_str + "TFLOP/s(cuBLAS 8192^3)");
    auto& cache = weight_cache();
    const int key = static_cast<int>(state.range(0) * 16 + state.range(1));
    if (cache.key != key) {
      cache.w = k::Tensor();
      cache.w = b.allocate({g.n, g.k}, k::DType::kBF16);
      fill(b, cache.w, 7);
      cache.key = key;
    }
    auto x = b.allocate({m, g.k}, k::DType::kBF16);
    auto y = b.allocate({m, g.n}, k::DType::kBF16);
    fill(b, x, 1);
    time_loop(state, b, [&] { b.gemm({&x, &cache.w, &y, m, g.n, g.k}); });
    const double flops = 2.0 * m * g.n * g.k;
    set_counters(state, flops, 2.0 * (m * g.k + g.n * g.k + m * g.n));
    using C = benchmark::Counter;
    // Target: >= 0.8 at large shapes.
    state.counters["peak_frac"] = C(flops / 1e12 / peak_tflops, C::kIsIterationInvariantRate);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// Measured dense bf16 peak of this device in TFLOP/s: the best of 10 timed
// cuBLAS GEMMs of 8192^3 (bf16 in/out, fp32 accumulation), measured once.
double measured_bf16_peak_tflops(k::Backend& b) {
  static double peak = 0;
  if (peak > 0) return peak;
  constexpr std::int64_t n = 8192;
  auto x = b.allocate({n, n}, k::DType::kBF16);
  auto w = b.allocate({n, n}, k::DType::kBF16);
  auto y = b.allocate({n, n}, k::DType::kBF16);
  fill(b, x, 11);
  fill(b, w, 12);
  b.gemm({&x, &w, &y, n, n, n});
  b.synchronize();
  double best_s = 1e30;
  for (int i = 0; i < 10; ++i) {
    b.timer_start();
    b.gemm({&x, &w, &y, n, n, n});
    best_s = std::min(best_s, b.timer_stop_s());
  }
  peak = 2.0 * n * n * n / best_s / 1e12;
  return peak;
}

// Measured HBM copy bandwidth of this device in GB/s, as `pdsim profile`
// measures it (kernels::measure_copy_bytes_per_s: a 1 GiB device-to-device
// copy, bytes read + written, best of 10), measured once.
double measured_copy_gbytes_per_s(k::Backend& b) {
  static const double bw = k::measure_copy_bytes_per_s(b, 1024.0 * 1024 * 1024, 10) / 1e9;
  return bw;
}

void BM_PrefillAttention(benchmark::State& state) {
  if (skip_without_device(state)) return;
  auto& b = *backend();
  const ModelShape& model = kModels[state.range(0)];
  const int seqs = static_cast<int>(state.range(1));
  const char* kernel = state.range(2) == 0 ? "mma" : state.range(2) == 1 ? "simt" : "wgmma";
  constexpr int kLen = 4096;  // keys per sequence: its prefix + new tokens
  const int prefix = static_cast<int>(state.range(3)), len = kLen - prefix;
  const std::int64_t T = static_cast<std::int64_t>(seqs) * len, Tk = static_cast<std::int64_t>(seqs) * kLen;
  const int H = model.heads, KV = model.kv_heads, hd = model.head_dim;
  try {
    const k::ScopedEnv env("PDSIM_ATTENTION_KERNEL", kernel);
    const double peak_tflops = measured_bf16_peak_tflops(b);
    char peak_str[32];
    std::snprintf(peak_str, sizeof peak_str, "%.0f", peak_tflops);
    state.SetLabel(std::string(model.name) + " " + std::to_string(seqs) + "x" + std::to_string(len) +
                   (prefix > 0 ? "+" + std::to_string(prefix) + "cached" : std::string()) + " heads=" +
                   std::to_string(H) + "/" + std::to_string(KV) + " hd=" + std::to_string(hd) + " kernel=" + kernel +
                   " causal-flops=unmasked-pairs peak=" + peak_str + "TFLOP/s(cuBLAS 8192^3)");
    auto q = b.allocate({T, H, hd}, k::DType::kBF16);
    auto kt = b.allocate({Tk, KV, hd}, k::DType::kBF16);
    auto v = b.allocate({Tk, KV, hd}, k::DType::kBF16);
    auto out = b.allocate({T, H, hd}, k::DType::kBF16);
    fill(b, q, 1);
    fill(b, kt, 2);
    fill(b, v, 3);
    std::vector<std::int32_t> cu(seqs + 1), cu_k(seqs + 1);
    for (int i = 0; i <= seqs; ++i) cu[i] = i * len, cu_k[i] = i * kLen;
    auto cut = b.allocate({seqs + 1}, k::DType::kI32);
    auto cukt = b.allocate({seqs + 1}, k::DType::kI32);
    b.upload_i32(cut, cu.data());
    b.upload_i32(cukt, cu_k.data());
    const k::PrefillAttentionArgs a{&q, &kt, &v, &cut, &out, seqs, H, KV, hd, T, len, prefix > 0 ? &cukt : nullptr, Tk};
    time_loop(state, b, [&] { b.prefill_attention(a); });
    // Causal: query i (of the new tokens) sees prefix + i + 1 keys; QK^T and PV are 2 FLOPs per (pair, dim) each.
    const double pairs = static_cast<double>(seqs) * len * (prefix + (len + 1.0) / 2.0);
    const double flops = 4.0 * pairs * H * hd;
    set_counters(state, flops, 2.0 * (2.0 * T * H * hd + 2.0 * Tk * KV * hd));
    using C = benchmark::Counter;
    state.counters["TFLOP/s"] = C(flops / 1e12, C::kIsIterationInvariantRate);
    state.counters["peak_frac"] = C(flops / 1e12 / peak_tflops, C::kIsIterationInvariantRate);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

void BM_DecodeAttention(benchmark::State& state) {
  if (skip_without_device(state)) return;
  auto& b = *backend();
  const ModelShape& model = kModels[state.range(0)];
  const int B = static_cast<int>(state.range(1));
  const char* kernels[] = {"regs", "smem", "regs-scatter", "mma"};  // PDSIM_DECODE_KERNEL values
  const char* kernel = kernels[state.range(2)];
  constexpr std::int64_t kTotalTokens = 262144;
  constexpr int kBlockTokens = 16;
  const int ctx = static_cast<int>(kTotalTokens / B);
  const int H = model.heads, KV = model.kv_heads, hd = model.head_dim;
  try {
    const k::ScopedEnv env("PDSIM_DECODE_KERNEL", kernel);
    const double copy_gbps = measured_copy_gbytes_per_s(b);
    char bw_str[32];
    std::snprintf(bw_str, sizeof bw_str, "%.0f", copy_gbps);
    state.SetLabel(std::string(model.name) + " batch=" + std::to_string(B) + " context=" + std::to_string(ctx) +
                   " heads=" + std::to_string(H) + "/" + std::to_string(KV) + " kernel=" + kernel + " copy=" + bw_str +
                   "GB/s(cudaMemcpy)");
    const int blocks_per_seq = (ctx + kBlockTokens - 1) / kBlockTokens;
    const int num_blocks = B * blocks_per_seq;
    std::vector<std::int32_t> perm(num_blocks);
    std::iota(perm.begin(), perm.end(), 0);
    std::mt19937 rng(1);
    std::shuffle(perm.begin(), perm.end(), rng);  // pages scattered like a long-running server's
    std::vector<std::int32_t> lens(B, ctx);
    auto q = b.allocate({B, H, hd}, k::DType::kBF16);
    auto out = b.allocate({B, H, hd}, k::DType::kBF16);
    auto kc = b.allocate({num_blocks, kBlockTokens, KV, hd}, k::DType::kBF16);
    auto vc = b.allocate({num_blocks, kBlockTokens, KV, hd}, k::DType::kBF16);
    auto bt = b.allocate({B, blocks_per_seq}, k::DType::kI32);
    auto cl = b.allocate({B}, k::DType::kI32);
    fill(b, q, 1);
    fill(b, kc, 2);
    fill(b, vc, 3);
    b.upload_i32(bt, perm.data());
    b.upload_i32(cl, lens.data());
    const k::DecodeAttentionArgs a{&q, &kc, &vc, &bt, &cl, &out, B, H, KV, hd, kBlockTokens, blocks_per_seq, ctx};
    time_loop(state, b, [&] { b.decode_attention(a); });
    const double tokens = static_cast<double>(B) * ctx;
    const double bytes = 2.0 * (2.0 * tokens * KV * hd + 2.0 * B * H * hd);
    set_counters(state, 4.0 * tokens * H * hd, bytes);
    using C = benchmark::Counter;
    // Target: >= 0.7 (batch x context = 256k tokens here).
    state.counters["bw_frac"] = C(bytes / 1e9 / copy_gbps, C::kIsIterationInvariantRate);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// The row-wise and elementwise ops of a layer at T tokens: bytes are the
// compulsory traffic (each input read once, each output written once; the
// RMSNorm weight once). Slots of the KV append are shuffled over a cache of
// 4 x T slots, like a block table's.
void BM_Elementwise(benchmark::State& state) {
  if (skip_without_device(state)) return;
  auto& b = *backend();
  const ModelShape& model = kModels[state.range(0)];
  const char* ops[] = {"rmsnorm", "add_rmsnorm", "silu_gate", "kv_append"};
  const int op = static_cast<int>(state.range(1));
  const std::int64_t T = state.range(2);
  const std::int64_t h = model.hidden, ffn = model.ffn, kv_row = static_cast<std::int64_t>(model.kv_heads) * model.head_dim;
  try {
    const double copy_gbps = measured_copy_gbytes_per_s(b);
    char bw_str[32];
    std::snprintf(bw_str, sizeof bw_str, "%.0f", copy_gbps);
    state.SetLabel(std::string(model.name) + " " + ops[op] + " tokens=" + std::to_string(T) + " copy=" + bw_str +
                   "GB/s(cudaMemcpy)");
    double bytes = 0, flops = 0;  // FLOPs per element as sim/model/ops.cc counts them
    switch (op) {
      case 0: {
        auto x = b.allocate({T, h}, k::DType::kBF16);
        auto w = b.allocate({h}, k::DType::kBF16);
        auto y = b.allocate({T, h}, k::DType::kBF16);
        fill(b, x, 1);
        fill(b, w, 2);
        time_loop(state, b, [&] { b.rmsnorm({&x, &w, &y, T, model.hidden, 1e-5f}); });
        bytes = 2.0 * (2.0 * T * h + h);
        flops = 5.0 * T * h;
        break;
      }
      case 1: {  // the residual add fused into the norm: x and the residual read, both outputs written
        auto x = b.allocate({T, h}, k::DType::kBF16);
        auto r = b.allocate({T, h}, k::DType::kBF16);
        auto w = b.allocate({h}, k::DType::kBF16);
        auto y = b.allocate({T, h}, k::DType::kBF16);
        fill(b, x, 1);
        fill(b, r, 2);
        fill(b, w, 3);
        time_loop(state, b, [&] { b.rmsnorm({&x, &w, &y, T, model.hidden, 1e-5f, &r}); });
        bytes = 2.0 * (4.0 * T * h + h);
        flops = 6.0 * T * h;
        break;
      }
      case 2: {
        auto g = b.allocate({T, 2 * ffn}, k::DType::kBF16);
        auto y = b.allocate({T, ffn}, k::DType::kBF16);
        fill(b, g, 1);
        time_loop(state, b, [&] { b.silu_gate({&g, &y, T, model.ffn}); });
        bytes = 2.0 * 3.0 * T * ffn;
        flops = 6.0 * T * ffn;
        break;
      }
      default: {
        constexpr int kBlockTokens = 16;
        const std::int64_t blocks = (4 * T + kBlockTokens - 1) / kBlockTokens;
        std::vector<std::int32_t> slots(blocks * kBlockTokens);
        std::iota(slots.begin(), slots.end(), 0);
        std::mt19937 rng(1);
        std::shuffle(slots.begin(), slots.end(), rng);
        slots.resize(T);
        auto kt = b.allocate({T, model.kv_heads, model.head_dim}, k::DType::kBF16);
        auto v = b.allocate({T, model.kv_heads, model.head_dim}, k::DType::kBF16);
        auto kc = b.allocate({blocks, kBlockTokens, model.kv_heads, model.head_dim}, k::DType::kBF16);
        auto vc = b.allocate({blocks, kBlockTokens, model.kv_heads, model.head_dim}, k::DType::kBF16);
        auto sm = b.allocate({T}, k::DType::kI32);
        fill(b, kt, 1);
        fill(b, v, 2);
        b.upload_i32(sm, slots.data());
        time_loop(state, b, [&] {
          b.kv_append({&kt, &v, &sm, &kc, &vc, T, model.kv_heads, model.head_dim, kBlockTokens});
        });
        bytes = 2.0 * 4.0 * T * kv_row;
        break;
      }
    }
    set_counters(state, flops, bytes);
    using C = benchmark::Counter;
    state.counters["bw_frac"] = C(bytes / 1e9 / copy_gbps, C::kIsIterationInvariantRate);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

void gemm_args(benchmark::internal::Benchmark* bm) {
  for (int model = 0; model < 2; ++model)
    for (int proj = 0; proj < 4; ++proj)
      for (int m : {1, 16, 128, 1024, 4096}) bm->Args({model, proj, m});
}

}  // namespace

BENCHMARK(BM_Gemm)->Apply(gemm_args)->ArgNames({"model", "proj", "m"})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PrefillAttention)
    ->ArgsProduct({{0, 1}, {1, 4}, {0, 1, 2}, {0}})
    ->ArgsProduct({{0, 1}, {4}, {0, 2}, {3584}})
    ->ArgNames({"model", "seqs", "kernel", "prefix"})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DecodeAttention)
    ->ArgsProduct({{0, 1}, {2, 8, 32, 64, 128, 256}, {0, 1, 2, 3}})
    ->ArgNames({"model", "batch", "kernel"})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

BENCHMARK(BM_Elementwise)
    ->ArgsProduct({{0, 1}, {0, 1, 2, 3}, {1, 16, 256, 1024, 4096}})
    ->ArgNames({"model", "op", "tokens"})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  // Free device memory while the CUDA context is still alive.
  weight_cache().w = k::Tensor();
  backend_slot().reset();
  return 0;
}
