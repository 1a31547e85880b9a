#include <algorithm>
#include <cmath>

#include "sim/core/error.h"
#include "sim/core/rng.h"
#include "sim/workload/workload.h"

namespace pdsim {

namespace {
// Independent RNG streams, so changing one distribution never shifts another.
enum Stream : std::uint64_t { kArrivalStream = 1, kInputStream = 2, kOutputStream = 3 };
}

std::int32_t draw_length(const LengthDist& d, Rng& rng) {
  double v = 0;
  switch (d.kind) {
    case LengthDist::Kind::kFixed: return static_cast<std::int32_t>(d.value);
    case LengthDist::Kind::kUniform:
      // Inclusive integer range [min, max].
      return static_cast<std::int32_t>(d.min + static_cast<std::int64_t>(rng.uniform01() * (d.max - d.min + 1)));
    case LengthDist::Kind::kNormal: v = rng.normal(d.mean, d.stddev); break;
    case LengthDist::Kind::kLognormal: v = rng.lognormal_mean_cv(d.mean, d.cv); break;
    case LengthDist::Kind::kEmpirical: {
      const auto i = static_cast<std::size_t>(rng.uniform01() * static_cast<double>(d.samples.size()));
      return d.samples[std::min(i, d.samples.size() - 1)];
    }
  }
  const double clipped = std::clamp(std::round(v), static_cast<double>(d.min), static_cast<double>(d.max));
  return static_cast<std::int32_t>(clipped);
}

std::vector<RequestSpec> generate_requests(const WorkloadConfig& config, std::uint64_t seed) {
  std::vector<RequestSpec> out;
  if (config.trace) {
    const auto rows = read_trace(config.trace->path, config.trace->format, config.num_requests);
    out.reserve(rows.size());
    if (rows.back().arrival_s * config.trace->time_scale > kMaxArrivalSpanS)
      throw InputError(config.trace->path, "with time_scale " + std::to_string(config.trace->time_scale) +
                                               " the trace spans more than 1e8 s of simulated time");
    for (const auto& r : rows)
      out.push_back({seconds_to_ns(r.arrival_s * config.trace->time_scale), r.input_tokens, r.output_tokens});
    return out;
  }
  PDSIM_CHECK(config.arrival.has_value(), "workload without arrival or trace");
  const ArrivalConfig& a = *config.arrival;
  Rng arrival_rng(seed, kArrivalStream), input_rng(seed, kInputStream), output_rng(seed, kOutputStream);
  out.reserve(static_cast<std::size_t>(config.num_requests));
  double t_s = 0;
  const double mean_gap = a.rate_rps > 0 ? 1.0 / a.rate_rps : 0;
  const double gamma_shape = 1.0 / (a.cv * a.cv);
  for (std::int64_t i = 0; i < config.num_requests; ++i) {
    RequestSpec r;
    switch (a.process) {
      case ArrivalConfig::Process::kPoisson: t_s += arrival_rng.exponential(mean_gap); break;
      case ArrivalConfig::Process::kGamma: t_s += arrival_rng.gamma(gamma_shape) * mean_gap / gamma_shape; break;
      case ArrivalConfig::Process::kConstant: t_s = static_cast<double>(i) * mean_gap; break;
      case ArrivalConfig::Process::kClosedLoop: break;
    }
    r.arrival_ns = seconds_to_ns(t_s);
    r.input_tokens = draw_length(config.input, input_rng);
    r.output_tokens = draw_length(config.output, output_rng);
    out.push_back(r);
  }
  return out;
}

}  // namespace pdsim
