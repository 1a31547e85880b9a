// Helpers shared by the kernel tests (tests/test_kernels_cpu.cc over every
// backend, tests/test_kernels_cuda.cc for CUDA-only cases): random non-zero
// inputs, device tensors whose host copy is rounded to what the device stores,
// NaN-poisoned outputs, and the atol + rtol |ref| comparison.
#pragma once
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "kernels/backend.h"

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

}  // namespace pdsim::kernels::test
