// Goodput: the highest arrival rate (req/s) at which a scenario's SLO
// attainment (summary.json slo.attainment: the fraction of requests meeting
// both the TTFT and the TPOT bound) stays >= a target.
//
// The search has two layers:
//  - search_goodput() is the pure bracketing + bisection on a rate, given a
//    probe function rate -> attainment. It knows nothing about simulation, so
//    tests can drive it with synthetic (and non-monotone) functions.
//  - find_goodput() probes a Scenario with the simulator: each probe is one
//    full run of the scenario at that rate, with the scenario's seed (the same
//    random draws at every probe: only the time axis is scaled).
//
// Rate knob:
//  - open loop (poisson, gamma, constant): workload.arrival.rate_rps. A probe
//    at rate r is exactly `pdsim run --set workload.arrival.rate_rps=r`.
//  - trace replay: workload.trace.time_scale. The trace's native rate is
//    (rows - 1) / (last timestamp - first timestamp) at time_scale 1; a probe
//    at rate r uses time_scale = native / r, i.e. exactly `pdsim run --set
//    workload.trace.time_scale=<native/r>`.
//  - closed loop has no arrival rate to search: an InputError.
//
// Search (rates in req/s; "pass" = attainment >= target):
//  1. Probe the scenario's own rate r0.
//  2. Bracket. If r0 passes, double until a probe fails. If it fails, probe
//     r0 * min_rate_fraction ("near zero load"); if that fails too the SLO
//     cannot be met at any load: goodput 0, slo_feasible = false. Otherwise
//     [r0 * min_rate_fraction, r0] is the bracket.
//  3. Bisect (geometric midpoint while hi > 4 lo, arithmetic after) keeping
//     lo = a passing rate, hi = a failing rate, lo < hi, until
//     (hi - lo) <= tolerance * lo, or the probe budget is spent.
//  The answer is lo. Attainment from a finite sample is not guaranteed
//  monotone in the rate (batching can make a slightly higher rate luckier), so
//  the result is defined as "a rate that passed, with a failing rate at most
//  tolerance above it": the highest passing rate found below the lowest
//  failing rate found. Passing rates above hi, if any exist, are not sought.
//  (For a single FCFS server, e.g. the M/D/1 set-up, scaling one arrival
//  sequence makes every wait grow with the rate, so attainment is monotone
//  there, up to nanosecond rounding of arrival times.)
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sim/config/scenario.h"

namespace pdsim {

struct GoodputOptions {
  double attainment = 0.9;          // target, in (0, 1]
  double tolerance = 0.01;          // stop when (hi - lo) <= tolerance * lo; in (0, 1)
  int max_probes = 40;              // simulator runs at most, >= 2
  double min_rate_fraction = 1e-6;  // "near zero load" = r0 * this
  // ... but at least this (capped at r0 / 2): keeps the simulated span of
  // arrivals within int64 nanoseconds (set from RateKnob::min_rate_rps).
  double min_rate_rps = 0;
};

struct GoodputProbe {
  double rate_rps = 0;
  double attainment = 0;
  bool pass = false;
};

// The outcome of the pure search.
struct RateSearch {
  double goodput_rps = 0;                // lo: highest passing rate below hi; 0 if none passed
  double low_rps = 0;                    // = goodput_rps
  std::optional<double> high_rps;        // lowest failing rate; absent if every probe passed
  bool slo_feasible = true;              // false: failed even at r0 * min_rate_fraction
  bool converged = false;                // (hi - lo) <= tolerance * lo, or infeasible (answer 0)
  std::string message;                   // one line on how the search ended
  std::vector<GoodputProbe> probes;      // in the order made
};

// REQUIRES: start_rps > 0; options valid (see GoodputOptions); probe returns
// an attainment in [0, 1]. Deterministic if probe is.
// on_probe, if set, is called after each probe (progress output).
using ProbeCallback = std::function<void(const GoodputProbe&)>;
RateSearch search_goodput(const std::function<double(double rate_rps)>& probe, double start_rps,
                          const GoodputOptions& options, const ProbeCallback& on_probe = {});

struct GoodputResult {
  RateSearch search;
  std::string rate_knob;                 // "workload.arrival.rate_rps" or "workload.trace.time_scale"
  double scenario_rate_rps = 0;          // r0: the scenario's own rate
  std::optional<double> trace_native_rate_rps;  // trace replay only (time_scale 1)
  int gpus = 0;
  double usd_per_hour = 0;               // sum over pools of GPUs x price_usd_per_hour
  double goodput_rps_per_gpu() const { return search.goodput_rps / gpus; }
  double goodput_rps_per_usd_hour() const { return usd_per_hour > 0 ? search.goodput_rps / usd_per_hour : 0.0; }
  // The time_scale that gives `rate_rps` (trace replay only).
  double time_scale_for(double rate_rps) const { return *trace_native_rate_rps / rate_rps; }
};

// Cluster price: GPUs x price_usd_per_hour over the scenario's pools.
double cluster_usd_per_hour(const Scenario& scenario);

// How a scenario's arrival rate is set (see the file comment).
struct RateKnob {
  std::string name;                             // "workload.arrival.rate_rps" or "workload.trace.time_scale"
  double scenario_rate_rps = 0;                 // the scenario's own rate
  std::optional<double> trace_native_rate_rps;  // trace replay only (time_scale 1)
  // Requests / 1e9 s: the lowest rate whose arrivals span at most 1e9 s
  // (SimTime is int64 nanoseconds, 9.2e9 s at most).
  double min_rate_rps = 0;
  // Sets the scenario's rate to rate_rps. REQUIRES: rate_rps > 0.
  void apply(Scenario& scenario, double rate_rps) const;
};
// Throws InputError for a closed-loop scenario or a trace with fewer than two
// distinct timestamps.
RateKnob rate_knob_of(const Scenario& scenario);

// slo.attainment of one run of `scenario` at `rate_rps` (as summary.json
// reports it). Thread-safe: the scenario is copied.
double attainment_at(const Scenario& scenario, const RateKnob& knob, double rate_rps);

// Throws InputError for a closed-loop scenario or a trace with fewer than two
// distinct timestamps; propagates the simulator's errors.
GoodputResult find_goodput(const Scenario& scenario, const GoodputOptions& options,
                           const ProbeCallback& on_probe = {});

// find_goodput with the probe supplied (e.g. one that also counts its runs).
GoodputResult find_goodput_with(const Scenario& scenario, const RateKnob& knob, const GoodputOptions& options,
                                const std::function<double(double rate_rps)>& attainment,
                                const ProbeCallback& on_probe = {});

// Validates options (InputError naming the option otherwise).
void validate(const GoodputOptions& options);

}  // namespace pdsim
