// Helpers shared by the emulated kernel tests (tests/emu): 16-byte aligned host
// buffers (what cudaMalloc gives), random never-zero inputs rounded to the
// storage type (the references read the rounded values), NaN-poisoned
// outputs, and the atol + rtol |ref| comparison.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "kernels/cuda/ops.cuh"
#include "kernels/reference.h"

namespace pdsim::kernels::cuda::emu_test {

inline float to_float(float x) { return x; }
inline float to_float(bf16 x) { return __bfloat162float(x); }

// A 16-byte aligned host buffer (std::vector<bf16> is only 2-byte aligned, and
// the kernels' 16-byte loads demand what cudaMalloc gives).
template <class E>
struct Aligned {
  std::size_t n = 0;
  std::unique_ptr<E, void (*)(void*)> ptr{nullptr, std::free};
  explicit Aligned(std::size_t count) : n(count) {
    ptr.reset(static_cast<E*>(std::aligned_alloc(16, ((n * sizeof(E) + 15) / 16) * 16 + 16)));
  }
  E* get() const { return ptr.get(); }
  std::size_t bytes() const { return n * sizeof(E); }
  E& operator[](std::size_t i) const { return ptr.get()[i]; }
};

// Uniform in [-1, -0.1] U [0.1, 1] (times scale): never zero.
inline std::vector<float> never_zero(std::size_t n, std::mt19937& rng, double scale = 1.0) {
  std::uniform_real_distribution<float> mag(0.1f, 1.0f);
  std::bernoulli_distribution sign(0.5);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>((sign(rng) ? 1.0 : -1.0) * mag(rng) * scale);
  return v;
}

// A device-layout copy of `host` in T; `host` becomes the rounded values.
template <class T>
Aligned<T> store(std::vector<float>& host) {
  Aligned<T> dev(host.size());
  for (std::size_t i = 0; i < host.size(); ++i) {
    dev[i] = from_f32<T>(host[i]);
    host[i] = to_float(dev[i]);
  }
  return dev;
}

template <class T>
Aligned<T> poisoned(std::size_t n) {
  Aligned<T> dev(n);
  for (std::size_t i = 0; i < n; ++i) dev[i] = from_f32<T>(NAN);
  return dev;
}

template <class T>
double atol_for() {
  return sizeof(T) == 4 ? 2e-4 : 1e-2;
}
template <class T>
double rtol_for() {
  return sizeof(T) == 4 ? 1e-3 : 2e-2;
}

// |got[i] - ref[i]| <= atol + rtol |ref[i]| for every i (NaN, e.g. an unwritten
// poisoned element, fails). Reports the count, the worst error and the first miss.
template <class T>
void check_close(const std::string& what, const Aligned<T>& got, const std::vector<double>& ref,
                 double atol = atol_for<T>(), double rtol = rtol_for<T>()) {
  REQUIRE(got.n == ref.size());
  std::size_t bad = 0, first = 0;
  double worst = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double err = std::fabs(to_float(got[i]) - ref[i]);
    if (!(err <= atol + rtol * std::fabs(ref[i])) && bad++ == 0) first = i;
    if (!(err <= worst)) worst = err;
  }
  INFO(what << ": " << bad << " of " << ref.size() << " elements out of tolerance, worst abs err " << worst
            << "; first bad element " << first << ": got " << (bad ? to_float(got[first]) : 0.f) << ", reference "
            << (bad ? ref[first] : 0.0));
  CHECK(bad == 0);
}

// A ragged causal prefill batch for a prefill kernel: never-zero q, k, v
// rounded to T, a NaN-poisoned output, the launch parameters, a description
// and the float64 reference.
template <class T>
struct PrefillBatch {
  std::vector<std::int32_t> cu{0};    // cu_seqlens
  std::vector<std::int32_t> cu_k{0};  // cu_seqlens_k (used when a prefix is given)
  int max_len = 0;
  std::vector<float> qf, kf, vf;  // the rounded values the reference reads
  Aligned<T> q{0}, k{0}, v{0}, out{0};
  PrefillAttentionParams<T> p;
  std::string what;

  // prefix (empty: none): keys cached before each sequence's new tokens.
  PrefillBatch(const std::string& kernel, int heads, int kv_heads, int hd, const std::vector<int>& lens,
               std::mt19937& rng, const std::vector<int>& prefix = {}) {
    for (std::size_t i = 0; i < lens.size(); ++i) {
      cu.push_back(cu.back() + lens[i]);
      cu_k.push_back(cu_k.back() + lens[i] + (prefix.empty() ? 0 : prefix.at(i)));
      max_len = std::max(max_len, lens[i]);
    }
    const std::size_t tokens = static_cast<std::size_t>(cu.back()), keys = static_cast<std::size_t>(cu_k.back());
    qf = never_zero(tokens * heads * hd, rng);
    kf = never_zero(keys * kv_heads * hd, rng);
    vf = never_zero(keys * kv_heads * hd, rng);
    q = store<T>(qf);
    k = store<T>(kf);
    v = store<T>(vf);
    out = poisoned<T>(qf.size());
    p.q = q.get();
    p.k = k.get();
    p.v = v.get();
    p.cu_seqlens = cu.data();
    p.cu_seqlens_k = prefix.empty() ? nullptr : cu_k.data();
    p.out = out.get();
    p.num_seqs = static_cast<int>(lens.size());
    p.heads = heads;
    p.kv_heads = kv_heads;
    p.head_dim = hd;
    p.max_seqlen = max_len;
    p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
    what = std::string(sizeof(T) == 2 ? "bf16" : "f32") + " " + kernel + " prefill heads=" + std::to_string(heads) +
           "/" + std::to_string(kv_heads) + " hd=" + std::to_string(hd) + " lens=";
    for (int l : lens) what += std::to_string(l) + " ";
    if (!prefix.empty()) {
      what += "prefix=";
      for (int x : prefix) what += std::to_string(x) + " ";
    }
  }
  std::vector<double> reference() const {
    return ref::prefill_attention(qf, kf, vf, cu, p.heads, p.kv_heads, p.head_dim,
                                  p.cu_seqlens_k ? cu_k : std::vector<std::int32_t>{});
  }
};

}  // namespace pdsim::kernels::cuda::emu_test
