// Helpers shared by the kernel tests (tests/test_kernels_cpu.cc over every
// backend, tests/test_kernels_cuda.cc for CUDA-only cases): random non-zero
// inputs, device tensors whose host copy is rounded to what the device stores,
// NaN-poisoned outputs, the atol + rtol |ref| comparison, a prefill attention
// case (with or without a cached prefix) and a paged decode attention case.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "kernels/backend.h"
#include "kernels/reference.h"
#include "kernels/scoped_env.h"
#include "tests/paged_block_table.h"

namespace pdsim::kernels::test {

struct Tol {
  double atol, rtol;
};
inline Tol tol_for(DType dt) { return dt == DType::kF32 ? Tol{2e-4, 1e-3} : Tol{1e-2, 2e-2}; }
inline Tol tol_for(const Backend& b) { return tol_for(b.compute_dtype()); }

// Uniform in [-1, -0.1] U [0.1, 1] (times scale): never zero.
inline std::vector<float> random_values(std::size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::uniform_real_distribution<float> mag(0.1f, 1.0f);
  std::bernoulli_distribution sign(0.5);
  std::vector<float> v(n);
  for (auto& x : v) x = (sign(rng) ? 1.0f : -1.0f) * mag(rng) * scale;
  return v;
}

// A device tensor of `dt` holding `host`; `host` is replaced by what the device
// stores (rounded to its dtype) so the reference sees the same inputs.
inline Tensor put(Backend& b, std::vector<std::int64_t> shape, std::vector<float>& host, DType dt) {
  auto t = b.allocate(std::move(shape), dt);
  REQUIRE(static_cast<std::size_t>(t.numel()) == host.size());
  b.upload(t, host.data());
  b.download(t, host.data());
  return t;
}
inline Tensor put(Backend& b, std::vector<std::int64_t> shape, std::vector<float>& host) {
  return put(b, std::move(shape), host, b.compute_dtype());
}
inline Tensor put_i32(Backend& b, std::vector<std::int64_t> shape, const std::vector<std::int32_t>& host) {
  auto t = b.allocate(std::move(shape), DType::kI32);
  REQUIRE(static_cast<std::size_t>(t.numel()) == host.size());
  b.upload_i32(t, host.data());
  return t;
}
inline Tensor poisoned(Backend& b, std::vector<std::int64_t> shape, DType dt) {
  auto t = b.allocate(std::move(shape), dt);
  std::vector<float> nan(static_cast<std::size_t>(t.numel()), std::numeric_limits<float>::quiet_NaN());
  b.upload(t, nan.data());
  return t;
}
inline Tensor poisoned(Backend& b, std::vector<std::int64_t> shape) {
  return poisoned(b, std::move(shape), b.compute_dtype());
}
inline std::vector<float> get(Backend& b, const Tensor& t) {
  b.synchronize();
  std::vector<float> v(static_cast<std::size_t>(t.numel()));
  b.download(t, v.data());
  return v;
}

// |got - ref| <= atol + rtol |ref| everywhere (NaN fails). Reports the first miss.
inline void check_close(const std::string& what, const std::vector<float>& got, const std::vector<double>& ref,
                        Tol tol) {
  REQUIRE(got.size() == ref.size());
  std::size_t bad = 0, first = 0;
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(got[i] - ref[i]);
    if (!(err <= tol.atol + tol.rtol * std::fabs(ref[i])) && bad++ == 0) first = i;
    if (!(err <= worst)) worst = err;
  }
  INFO(what << ": " << bad << " of " << got.size() << " elements out of tolerance (atol " << tol.atol << ", rtol "
            << tol.rtol << "), max abs err " << worst);
  if (bad) INFO("first at " << first << ": got " << got[first] << ", reference " << ref[first]);
  CHECK(bad == 0);
}

// RMSNorm and SiLU-gate of random inputs drawn from `rng` on backend b,
// against the float64 references (`what` prefixes the report).
// add_residual: the residual add fused into the norm; both outputs checked
// (the updated residual stream and the normalized rows), and x left as it was.
inline void check_rmsnorm(Backend& b, const std::string& what, std::int64_t rows, int hidden, std::mt19937& rng,
                          bool add_residual = false) {
  const auto n = static_cast<std::size_t>(rows * hidden);
  auto xh = random_values(n, rng, 3.0f), rh = random_values(n, rng, 2.0f);
  auto wh = random_values(static_cast<std::size_t>(hidden), rng);
  auto x = put(b, {rows, hidden}, xh);
  auto r = put(b, {rows, hidden}, rh);
  auto w = put(b, {hidden}, wh);
  auto y = poisoned(b, {rows, hidden});
  b.rmsnorm({&x, &w, &y, rows, hidden, 1e-5f, add_residual ? &r : nullptr});
  const std::string shape = std::to_string(rows) + "x" + std::to_string(hidden);
  if (!add_residual) {
    check_close(what + " rmsnorm " + shape, get(b, y), ref::rmsnorm(xh, wh, rows, hidden, 1e-5), tol_for(b));
    return;
  }
  const ref::AddRmsNorm want = ref::add_rmsnorm(xh, rh, wh, rows, hidden, 1e-5);
  check_close(what + " add + rmsnorm, residual " + shape, get(b, r), want.residual, tol_for(b));
  check_close(what + " add + rmsnorm, out " + shape, get(b, y), want.out, tol_for(b));
  check_close(what + " add + rmsnorm, x untouched " + shape, get(b, x), std::vector<double>(xh.begin(), xh.end()),
              Tol{0, 0});
}
inline void check_silu_gate(Backend& b, const std::string& what, std::int64_t rows, int ffn, std::mt19937& rng) {
  auto gh = random_values(static_cast<std::size_t>(rows * 2 * ffn), rng, 4.0f);
  auto g = put(b, {rows, 2 * ffn}, gh);
  auto y = poisoned(b, {rows, ffn});
  b.silu_gate({&g, &y, rows, ffn});
  check_close(what + " silu_gate " + std::to_string(rows) + "x" + std::to_string(ffn), get(b, y),
              ref::silu_gate(gh, rows, ffn), tol_for(b));
}
// Prefill attention on random inputs drawn from `rng`, checked against the
// float64 reference; returns the output. `kernel` (when set) picks the CUDA
// prefill kernel (PDSIM_ATTENTION_KERNEL) for the call; `prefix` (when not
// empty) puts that many cached keys before each sequence's (cu_seqlens_k).
inline std::vector<float> run_prefill(Backend& b, DType dt, int heads, int kv_heads, int hd,
                                      const std::vector<int>& lens, std::mt19937& rng, const char* kernel = nullptr,
                                      const std::vector<int>& prefix = {}) {
  std::vector<std::int32_t> cu{0}, cu_k{0};
  for (std::size_t i = 0; i < lens.size(); ++i) {
    cu.push_back(cu.back() + lens[i]);
    cu_k.push_back(cu_k.back() + lens[i] + (prefix.empty() ? 0 : prefix.at(i)));
  }
  const std::int64_t T = cu.back(), Tk = cu_k.back();
  auto qh = random_values(static_cast<std::size_t>(T * heads * hd), rng);
  auto kh = random_values(static_cast<std::size_t>(Tk * kv_heads * hd), rng);
  auto vh = random_values(static_cast<std::size_t>(Tk * kv_heads * hd), rng);
  auto q = put(b, {T, heads, hd}, qh, dt);
  auto kt = put(b, {Tk, kv_heads, hd}, kh, dt);
  auto v = put(b, {Tk, kv_heads, hd}, vh, dt);
  auto cut = put_i32(b, {static_cast<std::int64_t>(cu.size())}, cu);
  auto cukt = put_i32(b, {static_cast<std::int64_t>(cu_k.size())}, cu_k);
  auto out = poisoned(b, {T, heads, hd}, dt);
  {
    std::unique_ptr<ScopedEnv> env;
    if (kernel) env = std::make_unique<ScopedEnv>("PDSIM_ATTENTION_KERNEL", kernel);
    b.prefill_attention({&q, &kt, &v, &cut, &out, static_cast<int>(lens.size()), heads, kv_heads, hd, T,
                         *std::max_element(lens.begin(), lens.end()), prefix.empty() ? nullptr : &cukt, Tk});
  }
  auto got = get(b, out);
  std::string what = b.name() + " " + (kernel ? kernel : "auto") + " prefill heads=" + std::to_string(heads) + "/" +
                     std::to_string(kv_heads) + " hd=" + std::to_string(hd);
  if (!prefix.empty()) what += " after a prefix";
  const auto want =
      ref::prefill_attention(qh, kh, vh, cu, heads, kv_heads, hd, prefix.empty() ? std::vector<std::int32_t>{} : cu_k);
  check_close(what, got, want, tol_for(dt));
  if (!prefix.empty())  // the prefix matters: without it the answer is another one
    CHECK(ref::prefill_attention(qh, kh, vh, cu, heads, kv_heads, hd) != want);
  return got;
}

// Decode attention over a paged KV cache whose blocks are a shuffled
// permutation (plus unused blocks), on random inputs drawn from `rng`,
// checked against the float64 reference; returns the output.
inline std::vector<float> run_decode(Backend& b, DType dt, int heads, int kv_heads, int hd, int block_tokens,
                const std::vector<std::int32_t>& lens, std::mt19937& rng) {
  const int B = static_cast<int>(lens.size());
  const PagedBlockTable paged = shuffled_block_table(lens, block_tokens, rng);
  const int max_blocks = paged.max_blocks, num_blocks = paged.num_blocks;
  const std::vector<std::int32_t>& table = paged.table;
  const std::size_t cache = static_cast<std::size_t>(num_blocks) * block_tokens * kv_heads * hd;
  auto qh = random_values(static_cast<std::size_t>(B) * heads * hd, rng);
  auto kh = random_values(cache, rng), vh = random_values(cache, rng);
  auto q = put(b, {B, heads, hd}, qh, dt);
  auto kc = put(b, {num_blocks, block_tokens, kv_heads, hd}, kh, dt);
  auto vc = put(b, {num_blocks, block_tokens, kv_heads, hd}, vh, dt);
  auto bt = put_i32(b, {B, max_blocks}, table);
  auto cl = put_i32(b, {B}, lens);
  auto out = poisoned(b, {B, heads, hd}, dt);
  b.decode_attention({&q, &kc, &vc, &bt, &cl, &out, B, heads, kv_heads, hd, block_tokens, max_blocks,
                      *std::max_element(lens.begin(), lens.end())});
  auto got = get(b, out);
  check_close("decode heads=" + std::to_string(heads) + "/" + std::to_string(kv_heads) + " hd=" + std::to_string(hd),
              got, ref::decode_attention(qh, kh, vh, table, lens, heads, kv_heads, hd, block_tokens, max_blocks),
              tol_for(dt));
  return got;
}

}  // namespace pdsim::kernels::test
