// Calibrated roofline: per-class factors fitted to measured kernel tables.
// The formula that prices an op with fitted factors and the fit that finds
// them live here together, so `pdsim profile`, tools/fidelity.cc and
// RooflineCostModel all use the same one.
#pragma once
#include <vector>

#include "sim/hw/gpu_spec.h"
#include "sim/model/ops.h"

namespace pdsim {

// Seconds of one instance of `op` (count ignored) under fitted factors:
//   max(FLOPs / (peak x efficiency), bytes / (bandwidth x memory)) + kernels x overhead_us
//   GEMM of m rows:     efficiency = max(compute x m / (m + n_half), min_compute)
//   prefill attention:  efficiency = compute x L / (L + n_half), L = query-key pairs / query rows
//   anything else:      efficiency = compute
// `bandwidth` is HBM bytes/s for kernels and the link's bytes/s for the
// all-reduce (whose bytes are the ring volume 2(n-1)/n x message). n_half is
// Hockney's half-performance length: a GEMM of m rows runs as if it had
// n_half more (tile and pipeline fill), a query row attending to L keys as
// if it had n_half more (its softmax and tile edges cost the same for few
// keys as for many); min_compute is the floor where a small-m GEMM kernel
// takes over. Both are zero unless a fit chose them, and ignored for ops
// without a shape (m, pairs).
struct RooflineTerms {
  double compute_s = 0, memory_s = 0, overhead_s = 0;
  double total_s() const { return (compute_s > memory_s ? compute_s : memory_s) + overhead_s; }
  // What sets the time: "compute", "memory" (or "link" for the all-reduce) or "overhead".
  const char* bound(bool link) const;
};
RooflineTerms calibrated_terms(const RooflineFactors& f, const Op& op, double peak_flops, double bandwidth);
inline double calibrated_seconds(const RooflineFactors& f, const Op& op, double peak_flops, double bandwidth) {
  return calibrated_terms(f, op, peak_flops, bandwidth).total_s();
}

// The ring all-reduce's bytes per GPU over the link for a message of `bytes`.
double ring_allreduce_bytes(const Op& op);

// One measured row of a class's table: the op it measures (count 1) and its latency.
struct CalibrationPoint {
  Op op;
  double seconds = 0;
};

struct FitOptions {
  bool link = false;         // all-reduce: fit the link factor and overhead only
  bool fit_n_half = false;       // GEMM, prefill attention: also fit n_half (Hockney)
  bool fit_min_compute = false;  // GEMM, with fit_n_half: also fit the small-m floor
};

// Grid search minimising mean |ln(predicted / measured)| over the points:
// a coarse log grid of (compute, memory, overhead), then two finer passes
// around the best point; with fit_n_half, once per candidate n_half
// (and with fit_min_compute, per candidate floor as a fraction of compute,
// the best floor then refined).
// Factors are rounded (3 digits; overhead to 0.01 us) before being returned.
// REQUIRES: points non-empty, every seconds > 0.
RooflineFactors fit_roofline_factors(const std::vector<CalibrationPoint>& points, double peak_flops,
                                     double bandwidth, const FitOptions& options);

}  // namespace pdsim
