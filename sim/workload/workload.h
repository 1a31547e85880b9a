// Workload: what arrives and how long each request is.
//
// Open-loop arrivals (poisson, gamma with cv, constant) and trace replay give
// every request an arrival time up front. Closed loop (a fixed number of
// clients, each sending its next request the moment the previous one
// finishes) leaves arrival times to the simulator.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sim/core/time.h"

namespace pdsim {

// Longest span of arrivals a workload may have, in seconds (about 3 years):
// far inside the int64-nanosecond clock.
constexpr double kMaxArrivalSpanS = 1e8;

struct LengthDist {
  enum class Kind { kFixed, kUniform, kNormal, kLognormal, kEmpirical };
  Kind kind = Kind::kFixed;
  double value = 0;            // fixed
  double mean = 0, stddev = 0, cv = 0;
  std::int64_t min = 1, max = INT32_MAX;  // clip range (uniform bounds)
  std::vector<std::int32_t> samples;      // empirical: drawn uniformly with replacement
};

struct ArrivalConfig {
  enum class Process { kPoisson, kGamma, kConstant, kClosedLoop };
  Process process = Process::kPoisson;
  double rate_rps = 0;
  double cv = 1;          // gamma: coefficient of variation of inter-arrival gaps
  int concurrency = 0;    // closed loop
};

enum class TraceFormat { kAzureCsv, kMooncakeJsonl };

struct TraceConfig {
  std::string path;       // resolved (absolute or relative to the working directory)
  TraceFormat format = TraceFormat::kAzureCsv;
  double time_scale = 1;  // multiplies inter-arrival times (2 = half the rate)
};

struct WorkloadConfig {
  std::optional<ArrivalConfig> arrival;  // absent when replaying a trace
  std::optional<TraceConfig> trace;
  LengthDist input, output;
  std::int64_t num_requests = 0;
};

struct RequestSpec {
  SimTime arrival_ns = 0;  // meaningless under closed loop
  std::int32_t input_tokens = 0;
  std::int32_t output_tokens = 0;
};

struct TraceRow {
  double arrival_s = 0;  // relative to the first row
  std::int32_t input_tokens = 0;
  std::int32_t output_tokens = 0;
};

// Reads up to `limit` rows (0 = all). Errors name file:line.
std::vector<TraceRow> read_trace(const std::string& path, TraceFormat format, std::int64_t limit = 0);

// Same seed -> same requests. Arrivals sorted.
std::vector<RequestSpec> generate_requests(const WorkloadConfig& config, std::uint64_t seed);

std::int32_t draw_length(const LengthDist& dist, class Rng& rng);

}  // namespace pdsim
