// Deterministic random streams. Distributions are implemented here rather than
// taken from <random>, whose distribution algorithms differ between standard
// libraries; with these, a seed gives the same requests everywhere.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

namespace pdsim {

// splitmix64: used to derive independent stream seeds from (seed, stream id).
inline std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// xoshiro256** generator. One instance per purpose (arrivals, input lengths,
// output lengths, ...) so adding draws to one stream never shifts another.
class Rng {
 public:
  Rng(std::uint64_t seed, std::uint64_t stream) {
    std::uint64_t sm = seed * 0x9E3779B97F4A7C15ull + stream * 0xD1B54A32D192ED03ull + 1;
    for (auto& word : s_) word = splitmix64(sm);
  }

  std::uint64_t next_u64() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in (0, 1): never exactly 0 or 1, so log() is always finite.
  double uniform01() { return (static_cast<double>(next_u64() >> 11) + 0.5) * 0x1.0p-53; }

  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform01(); }

  double exponential(double mean) { return -mean * std::log(uniform01()); }

  // Box-Muller; draws two uniforms per call and discards the second normal to
  // keep the stream position independent of call history.
  double normal(double mean, double stddev) {
    const double u1 = uniform01(), u2 = uniform01();
    return mean + stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

  double lognormal_mean_cv(double mean, double cv) {
    const double sigma2 = std::log1p(cv * cv);
    const double mu = std::log(mean) - 0.5 * sigma2;
    return std::exp(normal(mu, std::sqrt(sigma2)));
  }

  // Marsaglia-Tsang gamma with the given shape and scale = 1.
  double gamma(double shape) {
    if (shape < 1.0) {
      const double u = uniform01();
      return gamma(shape + 1.0) * std::pow(u, 1.0 / shape);
    }
    const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      double x, v;
      do {
        x = normal(0.0, 1.0);
        v = 1.0 + c * x;
      } while (v <= 0.0);
      v = v * v * v;
      const double u = uniform01();
      if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
      if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
    }
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

}  // namespace pdsim
