// Capacity planner (sim/plan/plan.h): the answer against brute force over the
// whole search space, a hand-known M/D/1 case, independence from --jobs, and
// plan-file errors.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <tuple>

#include "sim/core/error.h"
#include "sim/plan/plan.h"
#include "test_util.h"

using namespace pdsim;
using namespace pdsim::test;

namespace {

namespace fs = std::filesystem;

// A temporary directory removed at scope exit.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) : path(fs::temp_directory_path() / name) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& file, const nlohmann::json& doc) const {
    const fs::path p = path / file;
    std::ofstream(p) << doc.dump(2);
    return p.string();
  }
};

PlanSpec make_plan(const std::string& scenario_path, double target_rps) {
  PlanSpec p;
  p.file = "plan.json";
  p.scenario_path = scenario_path;
  p.target_rps = target_rps;
  p.attainment = 0.9;
  p.goodput.attainment = 0.9;
  return p;
}

// A small mixed workload where both GPU types and both pools matter.
nlohmann::json mixed_scenario() {
  auto doc = base_scenario();
  doc["workload"]["num_requests"] = 400;
  doc["workload"]["input_tokens"] = {{"dist", "lognormal"}, {"mean", 1024}, {"cv", 0.5}, {"min", 16}, {"max", 4096}};
  doc["workload"]["output_tokens"] = {{"dist", "fixed"}, {"value", 64}};
  return doc;
}

struct ByHand {
  double attainment = 0, usd_per_hour = 0;
  int gpus = 0;
};

// The candidate run as a plain scenario at `rate`, outside the planner.
ByHand by_hand(nlohmann::json doc, const Candidate& c, double rate) {
  for (auto [role, p] : {std::pair{"prefill", &c.prefill}, std::pair{"decode", &c.decode}}) {
    doc["cluster"][role]["gpu"] = p->gpu;
    doc["cluster"][role]["tp"] = p->tp;
    doc["cluster"][role]["instances"] = p->instances;
  }
  doc["workload"]["arrival"]["rate_rps"] = rate;
  const Scenario s = make_scenario(doc);
  const auto summary = make_summary(s, run(s));
  return {summary["slo"]["attainment"].get<double>(), summary["cost"]["usd_per_hour"].get<double>(),
          summary["scenario"]["gpus"].get<int>()};
}

}  // namespace

TEST_CASE("plan answer is the cheapest passing configuration found by brute force") {
  TempDir dir("pdsim_test_plan_brute");
  const auto doc = mixed_scenario();
  PlanSpec plan = make_plan(dir.write("s.json", doc), 60.0);
  plan.prefill = {{"h100-sxm", "l40s"}, {1}, 1, 3};
  plan.decode = {{"h100-sxm", "l40s"}, {1}, 1, 2};
  const PlanResult r = run_plan(plan, load_options(), 2);
  REQUIRE(r.best.has_value());
  CHECK(r.candidates_total == 2 * 3 * 2 * 2);
  CHECK(*r.best == r.candidates.size() - 1);
  const Candidate& best = r.candidates[*r.best];
  CHECK(best.status == Candidate::Status::kPass);

  // Brute force over every candidate, including those the plan never ran.
  std::optional<std::tuple<double, int>> cheapest;
  for (const auto& pg : plan.prefill.gpus)
    for (int x = 1; x <= 3; ++x)
      for (const auto& dg : plan.decode.gpus)
        for (int y = 1; y <= 2; ++y) {
          Candidate c;
          c.prefill = {pg, 1, x};
          c.decode = {dg, 1, y};
          const ByHand h = by_hand(doc, c, plan.target_rps);
          if (h.attainment >= plan.attainment && (!cheapest || std::tuple{h.usd_per_hour, h.gpus} < *cheapest))
            cheapest = std::tuple{h.usd_per_hour, h.gpus};
        }
  REQUIRE(cheapest.has_value());
  MESSAGE("plan picks (candidate " << r.candidates.size() << " of " << r.candidates_total << ") " << best.prefill.instances << " x " << best.prefill.gpu << " + " << best.decode.instances
                        << " x " << best.decode.gpu << " at $" << best.usd_per_hour << "/h");
  CHECK(best.usd_per_hour == doctest::Approx(std::get<0>(*cheapest)));
  CHECK(best.gpus == std::get<1>(*cheapest));
  // Every reported candidate's attainment is the one a plain run gives.
  for (const auto& c : r.candidates) {
    REQUIRE(c.status != Candidate::Status::kNotEvaluated);
    const ByHand h = by_hand(doc, c, plan.target_rps);
    CHECK(c.status == (h.attainment >= plan.attainment ? Candidate::Status::kPass : Candidate::Status::kFail));
    CHECK(c.attainment == h.attainment);
    CHECK(c.usd_per_hour == doctest::Approx(h.usd_per_hour));
    CHECK(c.gpus == h.gpus);
  }
  // The winner's goodput search starts at the target, which it passes.
  REQUIRE(r.best_goodput.has_value());
  CHECK(r.best_goodput->search.goodput_rps >= plan.target_rps);
}

TEST_CASE("plan on an M/D/1 prefill queue above one instance's capacity picks 2P1D") {
  // One request per batch, fixed 1024-token prompts, one output token: each
  // prefill instance serves at most 1/S req/s (S = the roofline prefill
  // time). At 1.05/S one instance is overloaded (its queue grows without
  // bound); two (round robin: 0.525/S each) wait less than 3 S for far more
  // than 90% of requests (M/D/1 at rho 0.525 gives P(W <= 3 S) = 0.980, and
  // alternating arrivals are more regular than Poisson).
  TempDir dir("pdsim_test_plan_md1");
  auto doc = base_scenario();
  doc["workload"]["input_tokens"] = {{"dist", "fixed"}, {"value", 1024}};
  doc["workload"]["output_tokens"] = {{"dist", "fixed"}, {"value", 1}};
  doc["workload"]["num_requests"] = 20000;
  doc["cluster"]["prefill"]["max_batch_requests"] = 1;
  const Scenario probe = make_scenario(doc);
  std::vector<Op> ops;
  build_ops(probe.model, probe.prefill.par, stats_of({{1024, 0}}), ops);
  const double S = ns_to_seconds(seconds_to_ns(make_cost_model(probe, probe.prefill)->total_s(ops)));
  doc["slo"]["ttft_s"] = 4 * S;
  doc["slo"]["tpot_s"] = 1e9;
  PlanSpec plan = make_plan(dir.write("s.json", doc), 1.05 / S);
  plan.prefill = {{"h100-sxm"}, {1}, 1, 3};
  plan.decode = {{"h100-sxm"}, {1}, 1, 2};
  const PlanResult r = run_plan(plan, load_options(), 1);
  REQUIRE(r.best.has_value());
  const Candidate& best = r.candidates[*r.best];
  CHECK(best.prefill.instances == 2);
  CHECK(best.decode.instances == 1);
  CHECK(best.gpus == 3);
  CHECK(best.usd_per_hour == doctest::Approx(10.5));
  REQUIRE(r.candidates.size() == 3);  // 1P1D ($7), 1P2D then 2P1D ($10.50, enumeration order)
  CHECK(r.candidates[0].status == Candidate::Status::kFail);
  CHECK(r.candidates[1].status == Candidate::Status::kFail);
  CHECK(r.message.find("2P1D") != std::string::npos);
}

TEST_CASE("plan results are identical for any number of jobs") {
  TempDir dir("pdsim_test_plan_jobs");
  PlanSpec plan = make_plan(dir.write("s.json", mixed_scenario()), 60.0);
  plan.prefill = {{"h100-sxm", "l40s"}, {1, 2}, 1, 2};
  plan.decode = {{"l40s", "h100-sxm"}, {1}, 1, 2};
  const PlanResult one = run_plan(plan, load_options(), 1);
  for (int jobs : {2, 3, 7}) {
    CAPTURE(jobs);
    const PlanResult many = run_plan(plan, load_options(), jobs);
    REQUIRE(many.candidates.size() == one.candidates.size());
    for (std::size_t i = 0; i < one.candidates.size(); ++i) {
      CHECK(many.candidates[i].index == one.candidates[i].index);
      CHECK(many.candidates[i].status == one.candidates[i].status);
      CHECK(many.candidates[i].attainment == one.candidates[i].attainment);
      CHECK(many.candidates[i].reason == one.candidates[i].reason);
    }
    CHECK(many.best == one.best);
    CHECK(many.message == one.message);
    REQUIRE(many.best_goodput.has_value());
    CHECK(many.best_goodput->search.goodput_rps == one.best_goodput->search.goodput_rps);
  }
}

TEST_CASE("plan skips configurations the model does not fit and says why") {
  TempDir dir("pdsim_test_plan_fit");
  auto doc = mixed_scenario();
  doc["model"] = "llama-3.1-70b";
  doc["workload"]["num_requests"] = 100;
  doc["workload"]["arrival"]["rate_rps"] = 0.5;
  PlanSpec plan = make_plan(dir.write("s.json", doc), 0.5);
  plan.prefill = {{"h100-sxm"}, {1, 2}, 1, 1};
  plan.decode = {{"h100-sxm"}, {2}, 1, 1};
  const PlanResult r = run_plan(plan, load_options(), 2);
  REQUIRE(r.candidates.size() >= 1);
  // 1 x tp1 prefill ($10.50 with the tp2 decode) is cheapest but 70B does not fit one H100.
  CHECK(r.candidates[0].prefill.tp == 1);
  CHECK(r.candidates[0].status == Candidate::Status::kSkipped);
  CHECK(r.candidates[0].reason.find("$.cluster.prefill") != std::string::npos);
  CHECK(r.candidates[0].reason.find("does not fit") != std::string::npos);
  REQUIRE(r.best.has_value());
  CHECK(r.candidates[*r.best].prefill.tp == 2);
}

TEST_CASE("plan file errors name the file and JSON path") {
  TempDir dir("pdsim_test_plan_errors");
  const std::string scenario = dir.write("s.json", base_scenario());
  const std::string data_dir = PDSIM_SOURCE_DIR;
  const nlohmann::json good = {{"scenario", "s.json"},
                               {"target_rps", 5},
                               {"prefill", {{"gpus", {"h100-sxm"}}, {"tp", {1}}, {"instances", {1, 2}}}},
                               {"decode", {{"gpus", {"h100-sxm"}}, {"instances", {1, 2}}}}};
  const PlanSpec ok = load_plan(dir.write("ok.json", good), data_dir);
  CHECK(ok.scenario_path == scenario);
  CHECK(ok.decode.tp == std::vector<int>{1});
  CHECK(ok.prefill.max_instances == 2);

  auto expect_error = [&](nlohmann::json doc, const std::string& needle) {
    const std::string path = dir.write("bad.json", doc);
    try {
      load_plan(path, data_dir);
      FAIL("expected an InputError containing " << needle);
    } catch (const InputError& e) {
      CAPTURE(e.what());
      CHECK(std::string(e.what()).find(path + ": " + needle) != std::string::npos);
    }
  };
  auto bad = good;
  bad["prefill"]["gpus"] = {"h100-sx"};
  expect_error(bad, "$.prefill.gpus[0]: unknown GPU \"h100-sx\"");
  bad = good;
  bad["decode"]["instances"] = {3, 1};
  expect_error(bad, "$.decode.instances: need 1 <= min <= max");
  bad = good;
  bad["prefill"]["tp"] = {1, 0};
  expect_error(bad, "$.prefill.tp[1]");
  bad = good;
  bad["target_rps"] = -1;
  expect_error(bad, "$.target_rps");
  bad = good;
  bad["tagret_rps"] = 1;
  expect_error(bad, "$.tagret_rps");
  bad = good;
  bad["scenario"] = "missing.json";
  expect_error(bad, "$.scenario");
}

TEST_CASE("plan rejects colocated and closed-loop base scenarios") {
  TempDir dir("pdsim_test_plan_modes");
  auto colocated = base_scenario();
  colocated["cluster"] = {{"mode", "colocated"}, {"colocated", {{"gpu", "h100-sxm"}, {"instances", 1}}}};
  PlanSpec plan = make_plan(dir.write("c.json", colocated), 5.0);
  plan.prefill = plan.decode = {{"h100-sxm"}, {1}, 1, 1};
  CHECK_THROWS_WITH_AS(run_plan(plan, load_options(), 1), doctest::Contains("c.json: $.cluster"), InputError);
  auto closed = base_scenario();
  closed["workload"]["arrival"] = {{"process", "closed_loop"}, {"concurrency", 4}};
  plan.scenario_path = dir.write("cl.json", closed);
  CHECK_THROWS_WITH_AS(run_plan(plan, load_options(), 1), doctest::Contains("$.workload.arrival.process"),
                       InputError);
}
