// Queueing-theory oracle: a prefill pool with one request per batch, fixed
// prompts and one output token is an M/D/1 queue. Its mean wait is
// Wq = rho * S / (2 (1 - rho)) (Pollaczek-Khinchine with zero service variance).
#include <doctest/doctest.h>

#include "test_util.h"

using namespace pdsim;
using namespace pdsim::test;

namespace {
double service_time_s(const Scenario& s) {
  std::vector<Op> ops;
  build_ops(s.model, s.prefill.par, stats_of({{1024, 0}}), ops);
  return ns_to_seconds(seconds_to_ns(make_cost_model(s, s.prefill)->total_s(ops)));
}

// Mean wait (arrival -> prefill start) over several seeds at utilization rho.
std::pair<double, double> simulated_and_md1_wait(double rho) {
  auto doc = base_scenario();
  doc["workload"]["input_tokens"] = {{"dist", "fixed"}, {"value", 1024}};
  doc["workload"]["output_tokens"] = {{"dist", "fixed"}, {"value", 1}};
  doc["cluster"]["prefill"]["max_batch_requests"] = 1;
  const double S = service_time_s(make_scenario(doc));
  doc["workload"]["arrival"]["rate_rps"] = rho / S;
  doc["workload"]["num_requests"] = 200000;
  double total_wait = 0;
  std::size_t n = 0;
  for (int seed = 1; seed <= 4; ++seed) {
    doc["seed"] = seed;
    const SimResult r = run(make_scenario(doc));
    for (const auto& rec : r.records) {
      total_wait += ns_to_seconds(rec.prefill_start - rec.arrival);
      ++n;
    }
  }
  return {total_wait / n, rho * S / (2 * (1 - rho))};
}
}  // namespace

TEST_CASE("prefill queue matches M/D/1 mean wait at utilization 0.5") {
  const auto [sim, theory] = simulated_and_md1_wait(0.5);
  CAPTURE(sim);
  CAPTURE(theory);
  CHECK(sim == doctest::Approx(theory).epsilon(0.05));
}

TEST_CASE("prefill queue matches M/D/1 mean wait at utilization 0.8") {
  const auto [sim, theory] = simulated_and_md1_wait(0.8);
  CAPTURE(sim);
  CAPTURE(theory);
  CHECK(sim == doctest::Approx(theory).epsilon(0.05));
}
