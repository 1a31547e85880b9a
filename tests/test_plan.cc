// Capacity planner (sim/plan/plan.h): the answer against brute force over the
// whole search space, a hand-known M/D/1 case, independence from --jobs, and
// plan-file errors.
#include <doctest/doctest.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
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
  plan.finalists = 1;
  plan.verify_seeds = 0;
  plan.robust_margin = 0;  // pass = attainment >= target on the one seed, as by hand
  plan.sweep = {1.0};
  const PlanResult r = run_plan(plan, load_options(), 2);
  REQUIRE(r.best.has_value());
  CHECK(r.candidates_total == 2 * 3 * 2 * 2);
  const Candidate& best = r.candidates[*r.best];
  CHECK(best.status == Candidate::Status::kPass);

  // Brute force over every candidate, including those the plan pruned or never ran.
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
  MESSAGE("plan picks " << best.name() << " " << best.prefill.gpu << " + " << best.decode.gpu << " at $"
                        << best.usd_per_hour << "/h after " << r.simulated << " of " << r.candidates_total
                        << " simulations");
  CHECK(best.usd_per_hour == doctest::Approx(std::get<0>(*cheapest)));
  CHECK(best.gpus == std::get<1>(*cheapest));
  CHECK(r.simulated < r.candidates_total);  // pruning saved work
  // Every simulated candidate's attainment is the one a plain run gives.
  for (const auto& c : r.candidates) {
    if (c.status != Candidate::Status::kPass && c.status != Candidate::Status::kFail) continue;
    const ByHand h = by_hand(doc, c, plan.target_rps);
    CHECK(c.status == (h.attainment >= plan.attainment ? Candidate::Status::kPass : Candidate::Status::kFail));
    CHECK(c.attainment == h.attainment);
    CHECK(c.usd_per_hour == doctest::Approx(h.usd_per_hour));
    CHECK(c.gpus == h.gpus);
  }
  // The winner's goodput search starts at the target, which it passes.
  REQUIRE(best.goodput.has_value());
  CHECK(best.goodput->search.goodput_rps >= plan.target_rps);
}

TEST_CASE("plan on an M/D/1 prefill queue above one instance's capacity picks 2P1D") {
  // One request per batch, fixed 1024-token prompts, one output token: each
  // prefill instance serves at most 1/S req/s (S = the roofline prefill
  // time). The per-instance prefill goodput at TTFT <= 4 S, attainment 0.9,
  // is Erlang's M/D/1 answer rho = 0.694 / S (tests/test_goodput.cc). At
  // 1.05/S one instance is overloaded and pruned by that estimate; two
  // (round robin: 0.525/S each) pass (M/D/1 at rho 0.525 gives P(W <= 3 S)
  // = 0.980, and alternating arrivals are more regular than Poisson).
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
  plan.finalists = 1;
  plan.sweep = {1.0};
  const PlanResult r = run_plan(plan, load_options(), 1);
  REQUIRE(r.phases.size() == 2);
  CHECK(r.phases[0].role == "prefill");
  CHECK(r.phases[0].goodput_rps * S == doctest::Approx(0.69396).epsilon(0.05));
  REQUIRE(r.best.has_value());
  const Candidate& best = r.candidates[*r.best];
  CHECK(best.prefill.instances == 2);
  CHECK(best.decode.instances == 1);
  CHECK(best.gpus == 3);
  CHECK(best.usd_per_hour == doctest::Approx(10.5));
  for (const auto& c : r.candidates)
    if (c.prefill.instances == 1) {
      CHECK(c.status == Candidate::Status::kPruned);
      CHECK(c.reason.find("estimated capacity") != std::string::npos);
    }
  CHECK(r.simulated == 1);  // 2P1D is the first candidate that survives pruning
  CHECK(r.message.find("2P1D") != std::string::npos);
}

TEST_CASE("plan results are identical for any number of jobs") {
  TempDir dir("pdsim_test_plan_jobs");
  for (Objective objective : {Objective::kTargetRate, Objective::kGoodputPerGpu}) {
    const std::string objective_label = objective_name(objective);
    CAPTURE(objective_label);
    PlanSpec plan = make_plan(dir.write("s.json", mixed_scenario()), 60.0);
    plan.objective = objective;
    plan.colocated = true;
    plan.prefill = {{"h100-sxm", "l40s"}, {1, 2}, 1, 2};
    plan.decode = {{"l40s", "h100-sxm"}, {1}, 1, 2};
    plan.colocated_space = {{"h100-sxm"}, {1}, 1, 3, {1}, {"prefill_priority", "chunked"}};
    plan.finalists = 2;
    plan.sweep = {0.5, 1.0};
    const PlanResult one = run_plan(plan, load_options(), 1);
    REQUIRE(one.best.has_value());
    for (int jobs : {2, 3, 7}) {
      CAPTURE(jobs);
      const PlanResult many = run_plan(plan, load_options(), jobs);
      REQUIRE(many.candidates.size() == one.candidates.size());
      for (std::size_t i = 0; i < one.candidates.size(); ++i) {
        CHECK(many.candidates[i].index == one.candidates[i].index);
        CHECK(many.candidates[i].status == one.candidates[i].status);
        CHECK(many.candidates[i].attainment == one.candidates[i].attainment);
        CHECK(many.candidates[i].recommended_rps == one.candidates[i].recommended_rps);
        CHECK(many.candidates[i].reason == one.candidates[i].reason);
      }
      for (std::size_t i = 0; i < one.phases.size(); ++i) CHECK(many.phases[i].goodput_rps == one.phases[i].goodput_rps);
      CHECK(many.finalists == one.finalists);
      CHECK(many.best == one.best);
      CHECK(many.message == one.message);
      REQUIRE(many.sweep.size() == one.sweep.size());
      for (std::size_t i = 0; i < one.sweep.size(); ++i) CHECK(many.sweep[i].point.attainment == one.sweep[i].point.attainment);
      CHECK(many.pareto.size() == one.pareto.size());
    }
  }
}

// In-memory TaskExchange: `size` threads play the processes (as MPI ranks do).
struct Board {
  explicit Board(int n) : size(n), slots(static_cast<std::size_t>(n)) {}
  std::mutex mu;
  std::condition_variable cv;
  int size, arrived = 0;
  std::uint64_t generation = 0;
  std::vector<std::vector<std::string>> slots, result;
};

class ThreadExchange : public TaskExchange {
 public:
  ThreadExchange(Board& board, int rank) : b_(board), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return b_.size; }
  std::vector<std::vector<std::string>> all_gather(const std::vector<std::string>& mine) override {
    std::unique_lock<std::mutex> lock(b_.mu);
    const std::uint64_t generation = b_.generation;
    b_.slots[static_cast<std::size_t>(rank_)] = mine;
    if (++b_.arrived == b_.size) {
      b_.result = b_.slots;
      b_.arrived = 0;
      ++b_.generation;
      b_.cv.notify_all();
    } else {
      b_.cv.wait(lock, [&] { return b_.generation != generation; });
    }
    return b_.result;
  }

 private:
  Board& b_;
  int rank_;
};

TEST_CASE("plan results are identical when its tasks are spread over processes") {
  TempDir dir("pdsim_test_plan_ranks");
  for (Objective objective : {Objective::kTargetRate, Objective::kGoodputPerUsd}) {
    const std::string objective_label = objective_name(objective);
    CAPTURE(objective_label);
    PlanSpec plan = make_plan(dir.write("s.json", mixed_scenario()), 60.0);
    plan.objective = objective;
    plan.colocated = true;
    plan.prefill = {{"h100-sxm", "l40s"}, {1}, 1, 2};
    plan.decode = {{"l40s", "h100-sxm"}, {1}, 1, 2};
    plan.colocated_space = {{"h100-sxm"}, {1}, 1, 3, {1}, {"prefill_priority", "chunked"}};
    plan.finalists = 2;
    plan.sweep = {0.5, 1.0};
    const PlanResult one = run_plan(plan, load_options(), 1);
    REQUIRE(one.best.has_value());
    for (int processes : {2, 3}) {
      CAPTURE(processes);
      Board board(processes);
      std::vector<PlanResult> results(static_cast<std::size_t>(processes));
      std::vector<std::thread> threads;
      for (int r = 0; r < processes; ++r)
        threads.emplace_back([&, r] {
          ThreadExchange exchange(board, r);
          results[static_cast<std::size_t>(r)] = run_plan(plan, load_options(), 1, {}, &exchange);
        });
      for (auto& t : threads) t.join();
      for (const PlanResult& many : results) {
        REQUIRE(many.candidates.size() == one.candidates.size());
        for (std::size_t i = 0; i < one.candidates.size(); ++i) {
          CHECK(many.candidates[i].status == one.candidates[i].status);
          CHECK(many.candidates[i].attainment == one.candidates[i].attainment);
          CHECK(many.candidates[i].recommended_rps == one.candidates[i].recommended_rps);
          CHECK(many.candidates[i].goodput.has_value() == one.candidates[i].goodput.has_value());
          if (many.candidates[i].goodput && one.candidates[i].goodput)
            CHECK(many.candidates[i].goodput->search.probes.size() == one.candidates[i].goodput->search.probes.size());
          CHECK(many.candidates[i].reason == one.candidates[i].reason);
        }
        for (std::size_t i = 0; i < one.phases.size(); ++i) CHECK(many.phases[i].goodput_rps == one.phases[i].goodput_rps);
        CHECK(many.finalists == one.finalists);
        CHECK(many.best_by_mode == one.best_by_mode);
        REQUIRE(many.sweep.size() == one.sweep.size());
        for (std::size_t i = 0; i < one.sweep.size(); ++i) {
          CHECK(many.sweep[i].point.attainment == one.sweep[i].point.attainment);
          CHECK(many.sweep[i].point.tokens_per_s_per_user == one.sweep[i].point.tokens_per_s_per_user);
        }
        CHECK(many.pareto.size() == one.pareto.size());
        CHECK(many.message == one.message);
      }
    }
  }
}

TEST_CASE("plan maximizing goodput per GPU ranks finalists by their measured rate") {
  TempDir dir("pdsim_test_plan_max");
  PlanSpec plan = make_plan(dir.write("s.json", mixed_scenario()), 0);
  plan.objective = Objective::kGoodputPerGpu;
  plan.colocated = true;
  plan.prefill = {{"h100-sxm", "l40s"}, {1}, 1, 3};
  plan.decode = {{"h100-sxm"}, {1}, 1, 2};
  plan.colocated_space = {{"h100-sxm"}, {1}, 1, 2, {1}, {"chunked"}};
  plan.finalists = 2;
  plan.sweep = {0.25, 0.5, 1.0};
  const PlanResult r = run_plan(plan, load_options(), 2);
  REQUIRE(r.finalists.size() == 2);
  double best_score = 0;
  for (const auto& c : r.candidates)
    if (c.goodput) {
      CHECK(c.recommended_rps <= c.goodput->search.goodput_rps);
      best_score = std::max(best_score, c.recommended_rps / c.gpus);
    }
  const Candidate& best = r.candidates[*r.best];
  CHECK(best.recommended_rps / best.gpus == best_score);
  CHECK(best.recommended_rps / best.gpus >= r.candidates[r.finalists[1]].recommended_rps / r.candidates[r.finalists[1]].gpus);
  // The recommended rate passes, with the margin, on the scenario seed and the verify seeds.
  Scenario s = make_scenario(candidate_document(plan, load_options(), best, best.recommended_rps));
  for (int k = 0; k <= plan.verify_seeds; ++k) {
    Scenario t = s;
    t.seed = s.seed + static_cast<std::uint64_t>(k);
    CHECK(make_summary(t, run(t))["slo"]["attainment"].get<double>() >= plan.attainment + plan.robust_margin);
  }
  // Pareto points meet the target, and none is dominated by a sweep point meeting it.
  REQUIRE(!r.pareto.empty());
  for (const auto& p : r.pareto) {
    CHECK(p.attainment >= plan.attainment);
    for (const auto& q : r.sweep)
      if (q.point.attainment >= plan.attainment)
        CHECK_FALSE((q.point.output_tokens_per_s_per_gpu > p.output_tokens_per_s_per_gpu &&
                     q.point.tokens_per_s_per_user > p.tokens_per_s_per_user));
  }
  for (std::size_t i = 1; i < r.pareto.size(); ++i) {
    CHECK(r.pareto[i].output_tokens_per_s_per_gpu >= r.pareto[i - 1].output_tokens_per_s_per_gpu);
    CHECK(r.pareto[i].tokens_per_s_per_user <= r.pareto[i - 1].tokens_per_s_per_user);
  }
}

TEST_CASE("plan pruning keeps the answer an exhaustive search finds") {
  TempDir dir("pdsim_test_plan_exhaustive");
  for (Objective objective : {Objective::kTargetRate, Objective::kGoodputPerUsd}) {
    const std::string objective_label = objective_name(objective);
    CAPTURE(objective_label);
    PlanSpec plan = make_plan(dir.write("s.json", mixed_scenario()), 40.0);
    plan.objective = objective;
    plan.colocated = true;
    plan.prefill = {{"h100-sxm", "l40s"}, {1}, 1, 2};
    plan.decode = {{"h100-sxm", "l40s"}, {1}, 1, 2};
    plan.colocated_space = {{"h100-sxm", "l40s"}, {1}, 1, 2, {1}, {"prefill_priority"}};
    plan.finalists = 1;
    plan.verify_seeds = 1;
    plan.sweep = {1.0};
    const PlanResult pruned = run_plan(plan, load_options(), 2);
    plan.exhaustive = true;
    const PlanResult all = run_plan(plan, load_options(), 2);
    CHECK(all.simulated == all.candidates_total);
    CHECK(pruned.simulated < all.simulated);
    REQUIRE(pruned.best.has_value());
    REQUIRE(all.best.has_value());
    const Candidate &a = pruned.candidates[*pruned.best], &b = all.candidates[*all.best];
    MESSAGE(objective_label << ": " << a.name() << " after " << pruned.simulated << " of "
                                      << all.simulated << " simulations");
    CHECK(a.index == b.index);
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
  plan.sweep = {1.0};
  const PlanResult r = run_plan(plan, load_options(), 2);
  REQUIRE(r.candidates.size() == 2);
  // 1 x tp1 prefill does not fit one H100.
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
  bad = good;
  bad["objective"] = "goodput_per_gpu";
  expect_error(bad, "$.target_rps: only with");
  bad = good;
  bad["modes"] = {"disaggregated", "colo"};
  expect_error(bad, "$.modes[1]");
  // Range-checked before narrowing to int: 2^32 + 2 would pass as 2.
  bad = good;
  bad["verify_seeds"] = 4294967298LL;
  expect_error(bad, "$.verify_seeds: must be in [0, 20], got 4294967298");
  bad = good;
  bad["finalists"] = 4294967299LL;
  expect_error(bad, "$.finalists: must be in [1, 100]");
  bad = good;
  bad["max_total_gpus"] = 4294967298LL;
  expect_error(bad, "$.max_total_gpus: must be in [1, 1000000]");
  bad = good;
  bad["prefill"]["gpus"] = {{{"name", "h100-sxm"}, {"max_count", 4294967298LL}}};
  expect_error(bad, "$.prefill.gpus[0].max_count: must be in [1, 1000000]");
  bad = good;
  bad["colocated"] = {{"gpus", {"h100-sxm"}}, {"instances", {1, 2}}};
  expect_error(bad, "$.colocated: only with");
  bad = good;
  bad["prefill"]["gpus"] = {{{"name", "h100-sxm"}, {"price_usd_per_hour", -1}}};
  expect_error(bad, "$.prefill.gpus[0].price_usd_per_hour");
  auto with_price = good;
  with_price["prefill"]["gpus"] = {{{"name", "h100-sxm"}, {"price_usd_per_hour", 2.0}, {"max_count", 4}}};
  const PlanSpec priced = load_plan(dir.write("priced.json", with_price), data_dir);
  CHECK(priced.prefill.limits.at("h100-sxm").price_usd_per_hour == 2.0);
  CHECK(priced.prefill.limits.at("h100-sxm").max_count == 4);
}

TEST_CASE("plan accepts a colocated base scenario and rejects closed loop") {
  TempDir dir("pdsim_test_plan_modes");
  auto colocated = base_scenario();
  colocated["cluster"] = {{"mode", "colocated"}, {"colocated", {{"gpu", "h100-sxm"}, {"instances", 1}, {"max_batch_size", 64}}}};
  PlanSpec plan = make_plan(dir.write("c.json", colocated), 5.0);
  plan.prefill = plan.decode = {{"h100-sxm"}, {1}, 1, 1};
  plan.colocated = true;
  plan.colocated_space = {{"h100-sxm"}, {1}, 1, 1, {1}, {"chunked"}};
  plan.sweep = {1.0};
  const PlanResult r = run_plan(plan, load_options(), 1);
  REQUIRE(r.candidates.size() == 2);
  const auto d = candidate_document(plan, load_options(), r.candidates[1], 0);
  CHECK(d["cluster"]["mode"] == "colocated");
  CHECK(d["cluster"]["colocated"]["max_batch_size"] == 64);  // kept from the base pool
  CHECK(d["cluster"]["colocated"]["policy"] == "chunked");
  const auto p = candidate_document(plan, load_options(), r.candidates[0], 7.5);
  CHECK(p["cluster"]["decode"]["max_batch_size"] == 64);  // from the base colocated pool
  CHECK(p["workload"]["arrival"]["rate_rps"] == 7.5);
  auto closed = base_scenario();
  closed["workload"]["arrival"] = {{"process", "closed_loop"}, {"concurrency", 4}};
  plan.scenario_path = dir.write("cl.json", closed);
  CHECK_THROWS_WITH_AS(run_plan(plan, load_options(), 1), doctest::Contains("$.workload.arrival.process"),
                       InputError);
}
