#include "sim/metrics/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "sim/core/error.h"

namespace pdsim {

namespace {
constexpr double kBucketRatio = 1.001;
constexpr double kMinGapNs = 1000.0;   // 1 us
constexpr double kMaxGapNs = 1e13;     // ~2.8 h
const double kLogRatio = std::log(kBucketRatio);
std::size_t bucket_count() { return static_cast<std::size_t>(std::log(kMaxGapNs / kMinGapNs) / kLogRatio) + 2; }
}  // namespace

GapHistogram::GapHistogram() : buckets_(bucket_count(), 0) {}

void GapHistogram::add(SimTime gap_ns, std::uint64_t count) {
  PDSIM_CHECK(gap_ns >= 0, "negative token gap");
  std::size_t b = 0;
  if (static_cast<double>(gap_ns) >= kMinGapNs)
    b = 1 + static_cast<std::size_t>(std::log(static_cast<double>(gap_ns) / kMinGapNs) / kLogRatio);
  b = std::min(b, buckets_.size() - 1);
  buckets_[b] += count;
  total_ += count;
  sum_s_ += ns_to_seconds(gap_ns) * static_cast<double>(count);
  max_ns_ = std::max(max_ns_, gap_ns);
}

double GapHistogram::quantile_s(double p) const {
  if (total_ == 0) return 0.0;
  // Nearest rank: the smallest gap with at least p% of gaps <= it.
  const auto rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(p / 100.0 * total_)));
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    seen += buckets_[b];
    if (seen >= rank) {
      if (b == 0) return kMinGapNs * 0.5e-9;
      const double lo = kMinGapNs * std::exp(static_cast<double>(b - 1) * kLogRatio);
      return std::min(lo * std::sqrt(kBucketRatio) * 1e-9, max_s());
    }
  }
  return max_s();
}

double sorted_percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0.0;
  const double pos = p / 100.0 * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

double percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  return sorted_percentile(values, p);
}

Distribution distribution_of(const std::vector<double>& values) {
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  return distribution_of_sorted(sorted);
}

Distribution distribution_of_sorted(const std::vector<double>& sorted) {
  Distribution d;
  d.count = sorted.size();
  if (sorted.empty()) return d;
  auto at = [&](double p) { return sorted_percentile(sorted, p); };
  d.mean = std::accumulate(sorted.begin(), sorted.end(), 0.0) / static_cast<double>(sorted.size());
  d.p50 = at(50);
  d.p90 = at(90);
  d.p99 = at(99);
  d.max = sorted.back();
  return d;
}

}  // namespace pdsim
