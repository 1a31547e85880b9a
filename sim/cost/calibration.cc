#include "sim/cost/calibration.h"

#include <algorithm>
#include <cmath>

#include "sim/core/error.h"

namespace pdsim {

double ring_allreduce_bytes(const Op& op) {
  const double n = op.group_gpus;
  return 2.0 * (n - 1) / n * op.bytes;
}

const char* RooflineTerms::bound(bool link) const {
  if (overhead_s > std::max(compute_s, memory_s)) return "overhead";
  if (compute_s > memory_s) return "compute";
  return link ? "link" : "memory";
}

RooflineTerms calibrated_terms(const RooflineFactors& f, const Op& op, double peak_flops, double bandwidth) {
  RooflineTerms t;
  const bool link = op.op_class == OpClass::kAllReduce;
  if (!link) {
    double efficiency = f.compute;
    if (op.op_class == OpClass::kGemm && op.m > 0) {
      efficiency = std::max(f.compute * op.m / (op.m + f.n_half), f.min_compute);
    } else if (op.op_class == OpClass::kAttentionPrefill && op.m > 0 && op.pairs > 0) {
      const double keys_per_query = op.pairs / static_cast<double>(op.m);
      efficiency = f.compute * keys_per_query / (keys_per_query + f.n_half);
    }
    t.compute_s = op.flops / (peak_flops * efficiency);
  }
  t.memory_s = (link ? ring_allreduce_bytes(op) : op.bytes) / (bandwidth * f.memory);
  t.overhead_s = op.kernels * f.overhead_us * 1e-6;
  return t;
}

RooflineFactors fit_roofline_factors(const std::vector<CalibrationPoint>& points, double peak_flops,
                                     double bandwidth, const FitOptions& options) {
  PDSIM_CHECK(!points.empty(), "roofline fit needs at least one measured row");
  auto cost = [&](const RooflineFactors& f) {
    double s = 0;
    for (const auto& p : points) s += std::fabs(std::log(calibrated_seconds(f, p.op, peak_flops, bandwidth) / p.seconds));
    return s;
  };
  const std::vector<double> n_halves =
      options.fit_n_half ? std::vector<double>{0, 0.5, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024}
                         : std::vector<double>{0};
  // The floor as a fraction of `compute`, so every candidate is below it;
  // without n_half the efficiency is `compute` at every m and a floor
  // does nothing.
  std::vector<double> floor_fractions{0};
  if (options.fit_n_half && options.fit_min_compute)
    for (double r = 0.3; r < 0.97; r += 0.05) floor_fractions.push_back(r);
  // The (compute, memory, overhead) grid for one n_half and floor.
  auto fit_grid = [&](double n_half, double floor_fraction, RooflineFactors& local) {
    double c_lo = 0.02, c_hi = 1, m_lo = 0.02, m_hi = 1, o_lo = 0, o_hi = 40;
    double local_cost = 1e300;
    for (int pass = 0; pass < 3; ++pass) {
      const int nc = options.link ? 1 : 16, nm = 16, no = 17;
      for (int i = 0; i < nc; ++i)
        for (int j = 0; j < nm; ++j)
          for (int k = 0; k < no; ++k) {
            RooflineFactors f;
            f.compute = options.link ? 1 : c_lo * std::pow(c_hi / c_lo, i / double(nc - 1));
            f.memory = m_lo * std::pow(m_hi / m_lo, j / double(nm - 1));
            f.overhead_us = o_lo + (o_hi - o_lo) * k / double(no - 1);
            f.n_half = n_half;
            f.min_compute = f.compute * floor_fraction;
            const double c = cost(f);
            if (c < local_cost) local_cost = c, local = f;
          }
      // Narrow the box around the best point.
      const double cs = std::pow(c_hi / c_lo, 1.5 / 15), ms = std::pow(m_hi / m_lo, 1.5 / 15),
                   os = (o_hi - o_lo) * 1.5 / 16;
      c_lo = std::max(0.01, local.compute / cs), c_hi = std::min(1.0, local.compute * cs);
      m_lo = std::max(0.01, local.memory / ms), m_hi = std::min(1.0, local.memory * ms);
      o_lo = std::max(0.0, local.overhead_us - os), o_hi = local.overhead_us + os;
    }
    return local_cost;
  };
  RooflineFactors best{1, 1, 0};
  double best_cost = 1e300, best_fraction = 0;
  for (double n_half : n_halves)
    for (double r : floor_fractions) {
      if (n_half == 0 && r > 0) continue;
      RooflineFactors local;
      const double c = fit_grid(n_half, r, local);
      if (c < best_cost) best_cost = c, best = local, best_fraction = r;
    }
  // The floor grid is 0.05 apart: refine it (0.0025 apart) at the best point.
  if (best_fraction > 0)
    for (double r = best_fraction - 0.05; r <= best_fraction + 0.05; r += 0.0025) {
      RooflineFactors local;
      const double c = fit_grid(best.n_half, std::min(r, 1.0), local);
      if (c < best_cost) best_cost = c, best = local;
    }
  auto round3 = [](double x) { return std::round(x * 1000) / 1000; };
  return {round3(best.compute), round3(best.memory), std::round(best.overhead_us * 100) / 100, best.n_half,
          round3(best.min_compute)};
}

}  // namespace pdsim
