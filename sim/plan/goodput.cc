#include "sim/plan/goodput.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "sim/cluster/simulator.h"
#include "sim/core/error.h"
#include "sim/metrics/report.h"
#include "sim/workload/workload.h"

namespace pdsim {

namespace {

std::string fmt(const char* format, double a, double b = 0, double c = 0) {
  char buf[256];
  std::snprintf(buf, sizeof buf, format, a, b, c);
  return buf;
}

}  // namespace

void validate(const GoodputOptions& o) {
  if (!(o.attainment > 0 && o.attainment <= 1))
    throw InputError("--attainment", fmt("must be in (0, 1], got %g", o.attainment));
  if (!(o.tolerance > 0 && o.tolerance < 1))
    throw InputError("--tolerance", fmt("must be in (0, 1), got %g", o.tolerance));
  if (o.max_probes < 2) throw InputError("--max-probes", fmt("must be >= 2, got %g", o.max_probes));
  if (!(o.min_rate_fraction > 0 && o.min_rate_fraction < 1))
    throw InputError("min_rate_fraction", fmt("must be in (0, 1), got %g", o.min_rate_fraction));
}

RateSearch search_goodput(const std::function<double(double)>& probe_fn, double start_rps, const GoodputOptions& o,
                          const ProbeCallback& on_probe) {
  validate(o);
  PDSIM_CHECK(start_rps > 0 && std::isfinite(start_rps), "goodput search needs a positive start rate");
  RateSearch s;
  auto probe = [&](double rate) {
    const double a = probe_fn(rate);
    PDSIM_CHECK(a >= 0 && a <= 1, "attainment out of [0, 1]");
    const GoodputProbe p{rate, a, a >= o.attainment};
    s.probes.push_back(p);
    if (on_probe) on_probe(p);
    return p.pass;
  };
  auto budget_left = [&] { return static_cast<int>(s.probes.size()) < o.max_probes; };

  // 1-2. Bracket: lo passes (0 = none yet), hi fails.
  double lo = 0, hi = 0;
  bool have_hi = false;
  if (probe(start_rps)) {
    lo = start_rps;
    while (budget_left()) {
      const double r = 2 * lo;
      if (probe(r)) {
        lo = r;
      } else {
        hi = r;
        have_hi = true;
        break;
      }
    }
  } else {
    hi = start_rps;
    have_hi = true;
    const double floor_rps = std::max(start_rps * o.min_rate_fraction, std::min(o.min_rate_rps, start_rps / 2));
    if (probe(floor_rps)) {
      lo = floor_rps;
    } else {
      s.slo_feasible = false;
      s.converged = true;
      s.goodput_rps = s.low_rps = 0;
      s.high_rps = floor_rps;
      s.message = fmt("SLO attainment %.4f < target %g even at %g req/s (near zero load): the SLO cannot be met, "
                      "goodput is 0",
                      s.probes.back().attainment, o.attainment, floor_rps);
      return s;
    }
  }
  s.low_rps = s.goodput_rps = lo;
  if (!have_hi) {
    s.message = fmt("attainment >= target at every probed rate up to %g req/s: goodput is at least that "
                    "(probe budget of %g spent; raise --max-probes)",
                    lo, o.max_probes);
    return s;
  }

  // 3. Bisect.
  auto converged = [&] { return hi - lo <= o.tolerance * lo; };
  while (!converged() && budget_left()) {
    const double mid = hi > 4 * lo ? std::sqrt(lo * hi) : 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;  // floating-point resolution reached
    if (probe(mid))
      lo = mid;
    else
      hi = mid;
  }
  s.low_rps = s.goodput_rps = lo;
  s.high_rps = hi;
  s.converged = converged();
  s.message = s.converged ? fmt("converged: bracket [%g, %g] req/s, relative width %.3g", lo, hi, (hi - lo) / lo)
                          : fmt("NOT converged (probe budget spent): bracket [%g, %g] req/s, relative width %.3g",
                                lo, hi, (hi - lo) / lo);
  return s;
}

double cluster_usd_per_hour(const Scenario& s) {
  if (s.mode == Mode::kColocated) return s.colocated.gpus() * s.colocated.gpu.price_usd_per_hour;
  return s.prefill.gpus() * s.prefill.gpu.price_usd_per_hour + s.decode.gpus() * s.decode.gpu.price_usd_per_hour;
}

RateKnob rate_knob_of(const Scenario& scenario) {
  const WorkloadConfig& w = scenario.workload;
  RateKnob knob;
  if (w.trace) {
    const auto rows = read_trace(w.trace->path, w.trace->format, w.num_requests);
    double first_s = 0, last_s = 0;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      first_s = i ? std::min(first_s, rows[i].arrival_s) : rows[i].arrival_s;
      last_s = i ? std::max(last_s, rows[i].arrival_s) : rows[i].arrival_s;
    }
    const double span_s = last_s - first_s;
    if (!(span_s > 0))
      throw InputError(scenario.file + ": $.workload.trace",
                       "goodput needs a trace with at least two distinct timestamps to define its rate");
    const double native = static_cast<double>(rows.size() - 1) / span_s;
    knob.name = "workload.trace.time_scale";
    knob.min_rate_rps = static_cast<double>(rows.size()) / kMaxArrivalSpanS;
    knob.trace_native_rate_rps = native;
    knob.scenario_rate_rps = native / w.trace->time_scale;
    return knob;
  }
  PDSIM_CHECK(w.arrival.has_value(), "workload without arrival or trace");
  if (w.arrival->process == ArrivalConfig::Process::kClosedLoop)
    throw InputError(scenario.file + ": $.workload.arrival.process",
                     "goodput and plan search the arrival rate, and closed_loop has none (its load is set by "
                     "concurrency): use poisson, gamma, constant or a trace");
  knob.name = "workload.arrival.rate_rps";
  knob.min_rate_rps = static_cast<double>(w.num_requests) / kMaxArrivalSpanS;
  knob.scenario_rate_rps = w.arrival->rate_rps;
  return knob;
}

void RateKnob::apply(Scenario& s, double rate_rps) const {
  PDSIM_CHECK(rate_rps > 0 && std::isfinite(rate_rps), "rate must be positive");
  if (trace_native_rate_rps) {
    PDSIM_CHECK(s.workload.trace.has_value(), "trace knob on a scenario without a trace");
    s.workload.trace->time_scale = *trace_native_rate_rps / rate_rps;
  } else {
    PDSIM_CHECK(s.workload.arrival.has_value(), "rate knob on a scenario without arrivals");
    s.workload.arrival->rate_rps = rate_rps;
  }
}

double attainment_at(const Scenario& scenario, const RateKnob& knob, double rate_rps) {
  Scenario s = scenario;
  knob.apply(s, rate_rps);
  const SimResult r = simulate(s, generate_requests(s.workload, s.seed));
  return make_summary(s, r)["slo"]["attainment"].get<double>();
}

GoodputResult find_goodput_with(const Scenario& scenario, const RateKnob& knob, const GoodputOptions& options,
                                const std::function<double(double)>& attainment, const ProbeCallback& on_probe) {
  validate(options);
  GoodputResult result;
  result.gpus = scenario.total_gpus();
  result.usd_per_hour = cluster_usd_per_hour(scenario);
  result.rate_knob = knob.name;
  result.scenario_rate_rps = knob.scenario_rate_rps;
  result.trace_native_rate_rps = knob.trace_native_rate_rps;
  GoodputOptions o = options;
  o.min_rate_rps = std::max(o.min_rate_rps, knob.min_rate_rps);
  result.search = search_goodput(attainment, knob.scenario_rate_rps, o, on_probe);
  return result;
}

GoodputResult find_goodput(const Scenario& scenario, const GoodputOptions& options, const ProbeCallback& on_probe) {
  const RateKnob knob = rate_knob_of(scenario);
  return find_goodput_with(
      scenario, knob, options, [&](double rate) { return attainment_at(scenario, knob, rate); }, on_probe);
}

}  // namespace pdsim
