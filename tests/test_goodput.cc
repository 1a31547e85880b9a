// Goodput search (sim/plan/goodput.h): the pure bracketing + bisection on
// synthetic attainment curves, then the simulator-driven search against the
// M/D/1 waiting-time distribution, infeasible SLOs, determinism, closed loop
// and trace replay.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "sim/core/error.h"
#include "sim/plan/goodput.h"
#include "test_util.h"

using namespace pdsim;
using namespace pdsim::test;

namespace {

// Invariants every converged search must satisfy.
void check_bracket(const RateSearch& r, const GoodputOptions& o, const std::function<double(double)>& f) {
  REQUIRE(r.high_rps.has_value());
  CHECK(r.converged);
  CHECK(r.goodput_rps == r.low_rps);
  CHECK(r.low_rps < *r.high_rps);
  CHECK(*r.high_rps - r.low_rps <= o.tolerance * r.low_rps);
  CHECK(f(r.low_rps) >= o.attainment);
  CHECK(f(*r.high_rps) < o.attainment);
  // lo is the highest passing probe below hi; hi is the lowest failing probe.
  for (const auto& p : r.probes) {
    if (p.pass && p.rate_rps < *r.high_rps) CHECK(p.rate_rps <= r.low_rps);
    if (!p.pass) CHECK(p.rate_rps >= *r.high_rps);
  }
}

// ---- M/D/1 --------------------------------------------------------------

// Prefill time of one fixed prompt: the M/D/1 service time S (ns-rounded as
// the simulator schedules it).
double service_time_s(const Scenario& s, std::int32_t prompt_tokens) {
  std::vector<Op> ops;
  build_ops(s.model, s.prefill.par, stats_of({{prompt_tokens, 0}}), ops);
  return ns_to_seconds(seconds_to_ns(make_cost_model(s, s.prefill)->total_s(ops)));
}

// Erlang's M/D/1 waiting-time CDF:
// P(W <= t) = (1 - rho) sum_{k=0}^{floor(t/S)} (lambda (k S - t))^k / k! exp(-lambda (k S - t)).
// The terms alternate in sign; long double and t/S <= 5 keep the sum exact to
// far below the test's tolerance.
long double md1_wait_cdf(long double lambda, long double S, long double t) {
  const long double rho = lambda * S;
  long double sum = 0;
  const int kmax = static_cast<int>(std::floor(t / S));
  long double k_factorial = 1;
  for (int k = 0; k <= kmax; ++k) {
    if (k > 0) k_factorial *= k;
    const long double x = lambda * (k * S - t);  // <= 0
    sum += std::pow(x, static_cast<long double>(k)) / k_factorial * std::exp(-x);
  }
  return (1 - rho) * sum;
}

// The lambda at which P(W + S <= slo) = target, by bisection on (0, 1/S).
// P(W <= t) falls as lambda grows.
double md1_goodput(double S, double slo_s, double target) {
  long double lo = 0, hi = 1 / static_cast<long double>(S);
  for (int i = 0; i < 200; ++i) {
    const long double mid = (lo + hi) / 2;
    (md1_wait_cdf(mid, S, slo_s - S) >= target ? lo : hi) = mid;
  }
  return static_cast<double>(lo);
}

struct Md1Setup {
  nlohmann::json doc;
  double S = 0;
};

// One prefill instance, one request per batch, a fixed prompt, one output
// token, Poisson arrivals, TTFT-only SLO of `slo_in_S` service times.
Md1Setup md1_setup(double slo_in_S, std::int64_t requests) {
  Md1Setup m;
  m.doc = base_scenario();
  m.doc["workload"]["input_tokens"] = {{"dist", "fixed"}, {"value", 1024}};
  m.doc["workload"]["output_tokens"] = {{"dist", "fixed"}, {"value", 1}};
  m.doc["workload"]["num_requests"] = requests;
  m.doc["cluster"]["prefill"]["max_batch_requests"] = 1;
  m.S = service_time_s(make_scenario(m.doc), 1024);
  m.doc["workload"]["arrival"]["rate_rps"] = 0.5 / m.S;  // start at rho = 0.5
  m.doc["slo"]["ttft_s"] = slo_in_S * m.S;
  m.doc["slo"]["tpot_s"] = 1e9;
  return m;
}

}  // namespace

TEST_CASE("goodput search brackets a step attainment curve") {
  const double threshold = 3.7;
  const auto f = [&](double r) { return r <= threshold ? 1.0 : 0.0; };
  GoodputOptions o;
  o.tolerance = 0.001;
  for (double start : {0.1, 3.7, 50.0}) {
    CAPTURE(start);
    const RateSearch r = search_goodput(f, start, o);
    check_bracket(r, o, f);
    CHECK(r.goodput_rps <= threshold);
    CHECK(*r.high_rps > threshold);
    CHECK(r.slo_feasible);
  }
}

TEST_CASE("goodput search on a non-monotone curve returns a pass just below a failure") {
  // Passes on (0 2] and (3 5]; fails elsewhere.
  const auto f = [](double r) { return (r <= 2 || (r > 3 && r <= 5)) ? 0.95 : 0.5; };
  GoodputOptions o;
  // Start inside the failing gap: the bracket is [near zero, 2.5] and the
  // answer is the first edge (2), not the higher passing band.
  const RateSearch low = search_goodput(f, 2.5, o);
  check_bracket(low, o, f);
  CHECK(low.goodput_rps == doctest::Approx(2).epsilon(0.011));
  // Start at 1: doubling passes 1 2 4 and fails at 8: the answer is the edge at 5.
  const RateSearch high = search_goodput(f, 1.0, o);
  check_bracket(high, o, f);
  CHECK(high.goodput_rps == doctest::Approx(5).epsilon(0.011));
}

TEST_CASE("goodput search reports an SLO unmet at near zero load as goodput zero") {
  const RateSearch r = search_goodput([](double) { return 0.2; }, 10.0, GoodputOptions{});
  CHECK(r.goodput_rps == 0);
  CHECK_FALSE(r.slo_feasible);
  CHECK(r.probes.size() == 2);
  CHECK(r.probes[1].rate_rps == doctest::Approx(10.0 * 1e-6));
  CHECK(r.message.find("cannot be met") != std::string::npos);
}

TEST_CASE("goodput near zero load probe keeps the arrival span within int64 nanoseconds") {
  // 5000 requests at 0.5 req/s x 1e-6 would span 1e10 s = 1e19 ns > INT64_MAX:
  // the floor is requests / kMaxArrivalSpanS (1e8 s) instead, the span the
  // scenario loader and trace generator accept.
  auto doc = base_scenario();
  doc["workload"]["num_requests"] = 5000;
  doc["workload"]["arrival"]["rate_rps"] = 0.5;
  const RateKnob knob = rate_knob_of(make_scenario(doc));
  CHECK(knob.min_rate_rps == doctest::Approx(5000 / kMaxArrivalSpanS));
  GoodputOptions o;
  o.min_rate_rps = knob.min_rate_rps;
  const RateSearch r = search_goodput([](double) { return 0.2; }, 0.5, o);
  REQUIRE(r.probes.size() == 2);
  CHECK(r.probes[1].rate_rps == doctest::Approx(5000 / kMaxArrivalSpanS));
  CHECK(5000 / r.probes[1].rate_rps * 1e9 < 9.2e18);
  o.min_rate_rps = 10;  // never above r0 / 2
  CHECK(search_goodput([](double) { return 0.2; }, 0.5, o).probes[1].rate_rps == doctest::Approx(0.25));
}

TEST_CASE("goodput search stops at the probe budget when every probe passes") {
  GoodputOptions o;
  o.max_probes = 6;
  const RateSearch r = search_goodput([](double) { return 1.0; }, 1.0, o);
  CHECK(r.probes.size() == 6);
  CHECK_FALSE(r.converged);
  CHECK_FALSE(r.high_rps.has_value());
  CHECK(r.goodput_rps == 32.0);  // 1 2 4 8 16 32
  CHECK(r.message.find("at least") != std::string::npos);
}

TEST_CASE("goodput options out of range are input errors") {
  GoodputOptions o;
  o.attainment = 1.5;
  CHECK_THROWS_AS(validate(o), InputError);
  o = {};
  o.tolerance = 0;
  CHECK_THROWS_AS(validate(o), InputError);
  o = {};
  o.max_probes = 1;
  CHECK_THROWS_AS(validate(o), InputError);
}

TEST_CASE("M/D/1 waiting-time CDF integrates to the Pollaczek-Khinchine mean wait") {
  // E[W] = integral of (1 - P(W <= t)) dt = rho S / (2 (1 - rho)): checks the
  // oracle used below against an independent formula. Trapezoid rule up to
  // t = 30 S (the tail beyond is below 1e-9 of the mean at rho 0.5).
  const long double S = 0.025, rho = 0.5, lambda = rho / S;
  const int steps_per_S = 400;
  const long double h = S / steps_per_S;
  long double mean_wait = 0;
  for (int i = 0; i < 30 * steps_per_S; ++i)
    mean_wait += h * ((1 - md1_wait_cdf(lambda, S, i * h)) + (1 - md1_wait_cdf(lambda, S, (i + 1) * h))) / 2;
  CHECK(static_cast<double>(mean_wait) == doctest::Approx(static_cast<double>(rho * S / (2 * (1 - rho)))).epsilon(1e-4));
}

TEST_CASE("goodput of an M/D/1 prefill queue matches the waiting-time distribution") {
  // SLO = 4 S: P(W <= 3 S) must reach 0.9.
  Md1Setup m = md1_setup(4.0, 400000);
  const double target = 0.9;
  const double theory = md1_goodput(m.S, 4.0 * m.S, target);
  // The bisection solved the closed form; at t = 0 it is P(W = 0) = 1 - rho.
  CHECK(static_cast<double>(md1_wait_cdf(theory, m.S, 3.0 * m.S)) == doctest::Approx(target).epsilon(1e-9));
  CHECK(static_cast<double>(md1_wait_cdf(theory, m.S, 0)) == doctest::Approx(1 - theory * m.S).epsilon(1e-12));
  GoodputOptions o;
  o.attainment = target;
  o.tolerance = 0.002;
  const GoodputResult g = find_goodput(make_scenario(m.doc), o);
  MESSAGE("S = " << m.S << " s, M/D/1 goodput " << theory << " req/s (rho " << theory * m.S << "), simulated "
                 << g.search.goodput_rps << " req/s, bracket [" << g.search.low_rps << ", " << *g.search.high_rps
                 << "], " << g.search.probes.size() << " probes");
  CHECK(g.search.converged);
  CHECK(g.rate_knob == "workload.arrival.rate_rps");
  CHECK(g.search.goodput_rps == doctest::Approx(theory).epsilon(0.03));
  CHECK(g.gpus == 2);
  CHECK(g.goodput_rps_per_gpu() == doctest::Approx(g.search.goodput_rps / 2));
  CHECK(g.goodput_rps_per_usd_hour() == doctest::Approx(g.search.goodput_rps / g.usd_per_hour));
}

TEST_CASE("goodput probe equals a plain run at the same rate") {
  Md1Setup m = md1_setup(4.0, 5000);
  const GoodputResult g = find_goodput(make_scenario(m.doc), GoodputOptions{});
  REQUIRE(g.search.probes.size() >= 3);
  for (std::size_t i : {std::size_t{0}, g.search.probes.size() - 1}) {
    const GoodputProbe& p = g.search.probes[i];
    auto doc = m.doc;
    doc["workload"]["arrival"]["rate_rps"] = p.rate_rps;
    const Scenario s = make_scenario(doc);
    CHECK(make_summary(s, run(s))["slo"]["attainment"].get<double>() == p.attainment);
  }
}

TEST_CASE("goodput of a scenario whose SLO can never be met is zero") {
  // TTFT bound below the service time: no request can meet it at any load.
  Md1Setup m = md1_setup(0.5, 2000);
  const GoodputResult g = find_goodput(make_scenario(m.doc), GoodputOptions{});
  CHECK(g.search.goodput_rps == 0);
  CHECK(g.goodput_rps_per_gpu() == 0);
  CHECK_FALSE(g.search.slo_feasible);
  CHECK(g.search.message.find("cannot be met") != std::string::npos);
  CHECK(g.search.probes.size() == 2);
}

TEST_CASE("goodput is identical across runs") {
  auto doc = base_scenario();
  doc["workload"]["input_tokens"] = {{"dist", "lognormal"}, {"mean", 1024}, {"cv", 0.8}, {"min", 16}, {"max", 8192}};
  doc["workload"]["num_requests"] = 2000;
  const Scenario s = make_scenario(doc);
  const GoodputResult a = find_goodput(s, GoodputOptions{});
  const GoodputResult b = find_goodput(s, GoodputOptions{});
  REQUIRE(a.search.probes.size() == b.search.probes.size());
  for (std::size_t i = 0; i < a.search.probes.size(); ++i) {
    CHECK(a.search.probes[i].rate_rps == b.search.probes[i].rate_rps);
    CHECK(a.search.probes[i].attainment == b.search.probes[i].attainment);
  }
  CHECK(a.search.goodput_rps == b.search.goodput_rps);
  CHECK(a.search.goodput_rps > 0);
  CHECK(a.search.converged);
}

TEST_CASE("goodput of a closed-loop scenario is an input error") {
  auto doc = base_scenario();
  doc["workload"]["arrival"] = {{"process", "closed_loop"}, {"concurrency", 8}};
  const Scenario s = make_scenario(doc);
  try {
    find_goodput(s, GoodputOptions{});
    FAIL("expected an InputError");
  } catch (const InputError& e) {
    const std::string what = e.what();
    CHECK(what.find("test.json: $.workload.arrival.process") != std::string::npos);
    CHECK(what.find("closed_loop") != std::string::npos);
  }
}

TEST_CASE("goodput of a trace replay scales time and matches the same constant-rate workload") {
  // A trace of evenly spaced identical requests is the constant arrival
  // process at rate 1/gap: both searches must find the same goodput.
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "pdsim_test_goodput_trace";
  fs::create_directories(dir);
  const fs::path trace = dir / "even.jsonl";
  const int rows = 3000;
  const double gap_ms = 250;  // native rate 4 req/s
  {
    std::ofstream out(trace);
    for (int i = 0; i < rows; ++i)
      out << R"({"timestamp": )" << i * gap_ms << R"(, "input_length": 2048, "output_length": 1, "hash_ids": []})"
          << "\n";
  }
  auto doc = base_scenario();
  doc["cluster"]["prefill"]["max_batch_requests"] = 1;
  doc["slo"]["ttft_s"] = 0.5;
  doc["slo"]["tpot_s"] = 1e9;
  auto trace_doc = doc;
  trace_doc["workload"] = {{"trace", {{"path", trace.string()}, {"format", "mooncake_jsonl"}, {"time_scale", 2.0}}}};
  auto const_doc = doc;
  const_doc["workload"]["arrival"] = {{"process", "constant"}, {"rate_rps", 2.0}};
  const_doc["workload"]["num_requests"] = rows;
  const_doc["workload"]["input_tokens"] = {{"dist", "fixed"}, {"value", 2048}};
  const_doc["workload"]["output_tokens"] = {{"dist", "fixed"}, {"value", 1}};

  GoodputOptions o;
  o.tolerance = 0.002;
  const GoodputResult t = find_goodput(make_scenario(trace_doc), o);
  const GoodputResult c = find_goodput(make_scenario(const_doc), o);
  // The probe at the goodput is a plain run at time_scale = native / goodput.
  auto at_goodput = trace_doc;
  at_goodput["workload"]["trace"]["time_scale"] = t.time_scale_for(t.search.goodput_rps);
  const Scenario replay = make_scenario(at_goodput);
  double probe_attainment = -1;
  for (const auto& p : t.search.probes)
    if (p.rate_rps == t.search.goodput_rps) probe_attainment = p.attainment;
  CHECK(make_summary(replay, run(replay))["slo"]["attainment"].get<double>() == probe_attainment);
  fs::remove_all(dir);
  REQUIRE(t.trace_native_rate_rps.has_value());
  CHECK(*t.trace_native_rate_rps == doctest::Approx(4.0).epsilon(1e-12));
  CHECK(t.scenario_rate_rps == doctest::Approx(2.0).epsilon(1e-12));  // native / time_scale
  CHECK(t.rate_knob == "workload.trace.time_scale");
  CHECK(t.time_scale_for(t.search.goodput_rps) == doctest::Approx(4.0 / t.search.goodput_rps));
  MESSAGE("trace goodput " << t.search.goodput_rps << " req/s, constant-rate goodput " << c.search.goodput_rps);
  CHECK(t.search.converged);
  CHECK(t.search.goodput_rps > 2.0);
  CHECK(t.search.goodput_rps == doctest::Approx(c.search.goodput_rps).epsilon(0.005));
}
