// Per-request records, distributions and the run summary.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/core/time.h"

namespace pdsim {

// Lifecycle timestamps of one request (ns; -1 = did not happen, e.g. no KV
// transfer in colocated mode).
struct RequestRecord {
  std::int64_t id = 0;
  std::int32_t input_tokens = 0, output_tokens = 0;
  SimTime arrival = -1, prefill_start = -1, prefill_end = -1, transfer_start = -1, transfer_end = -1,
          decode_start = -1, first_token = -1, finish = -1;
  SimTime max_tbt = 0;  // largest gap between consecutive tokens (0 if one token)
  // Gap between the first and second tokens (-1 if one token). Disaggregated,
  // it holds the KV transfer and the wait to join a decode batch: the TBT
  // tail's usual source, reported apart so the tail can be told from steps.
  SimTime first_tbt = -1;
  std::int32_t prefill_instance = -1, decode_instance = -1;

  double ttft_s() const { return ns_to_seconds(first_token - arrival); }
  double e2e_s() const { return ns_to_seconds(finish - arrival); }
  // Mean time per output token after the first; defined for output_tokens > 1.
  double tpot_s() const {
    return output_tokens > 1 ? ns_to_seconds(finish - first_token) / (output_tokens - 1) : 0.0;
  }
};

// Streaming histogram of token gaps with log-spaced buckets of relative width
// 0.1%: a quantile read from it is within 0.05% of the exact sample quantile
// (gaps below 1 us fall in one bucket). Memory is fixed (~170 KB) whatever the
// number of tokens, which matters at 10^8 tokens.
class GapHistogram {
 public:
  GapHistogram();
  void add(SimTime gap_ns, std::uint64_t count = 1);
  std::uint64_t count() const { return total_; }
  double mean_s() const { return total_ ? sum_s_ / static_cast<double>(total_) : 0.0; }
  double max_s() const { return ns_to_seconds(max_ns_); }
  // p in [0, 100]; nearest-rank quantile reported at its bucket's geometric centre.
  double quantile_s(double p) const;

 private:
  std::vector<std::uint64_t> buckets_;
  std::uint64_t total_ = 0;
  double sum_s_ = 0;
  SimTime max_ns_ = 0;
};

// Linear-interpolated percentile (numpy's default); p in [0, 100]. Sorts a copy.
double percentile(std::vector<double> values, double p);
// The same on values already sorted ascending (no copy).
double sorted_percentile(const std::vector<double>& sorted, double p);

struct Distribution {
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
  std::size_t count = 0;
};
Distribution distribution_of(const std::vector<double>& values);  // sorts a copy
Distribution distribution_of_sorted(const std::vector<double>& sorted);

}  // namespace pdsim
