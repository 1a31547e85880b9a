// pdsim plan: the cheapest prefill:decode configuration meeting a target rate
// under the SLO (search in sim/plan/plan.h).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "sim/core/error.h"
#include "sim/plan/plan.h"
#include "tools/commands.h"

namespace pdsim::cli {

namespace fs = std::filesystem;

namespace {

struct PlanCliOptions {
  std::string plan;
  std::string out_dir;
  int jobs = 0;  // 0 = hardware threads
  std::int64_t seed = -1;
  std::vector<std::string> overrides;
  bool json = false;
  bool quiet = false;
};

nlohmann::ordered_json pool_json(const PoolChoice& p) {
  return {{"gpu", p.gpu}, {"tp", p.tp}, {"instances", p.instances}};
}

nlohmann::ordered_json to_json(const PlanSpec& plan, const PlanResult& r) {
  nlohmann::ordered_json j;
  j["plan"] = {{"file", plan.file},
               {"scenario", plan.scenario_path},
               {"target_rps", plan.target_rps},
               {"attainment", plan.attainment},
               {"max_total_gpus", plan.max_total_gpus}};
  j["candidates_total"] = r.candidates_total;
  j["candidates_reported"] = r.candidates.size();
  if (r.best) {
    const Candidate& c = r.candidates[*r.best];
    const GoodputResult& g = *r.best_goodput;
    j["best"] = {{"name", std::to_string(c.prefill.instances) + "P" + std::to_string(c.decode.instances) + "D"},
                 {"prefill", pool_json(c.prefill)},
                 {"decode", pool_json(c.decode)},
                 {"gpus", c.gpus},
                 {"usd_per_hour", c.usd_per_hour},
                 {"attainment_at_target", c.attainment},
                 {"goodput_rps", g.search.goodput_rps},
                 {"goodput_rps_per_gpu", g.goodput_rps_per_gpu()},
                 {"goodput_rps_per_usd_hour", g.usd_per_hour > 0 ? nlohmann::ordered_json(g.goodput_rps_per_usd_hour())
                                                                 : nlohmann::ordered_json(nullptr)},
                 {"goodput_bracket_rps",
                  {g.search.low_rps, g.search.high_rps ? nlohmann::ordered_json(*g.search.high_rps) : nullptr}},
                 {"goodput_converged", g.search.converged},
                 {"goodput_probes", g.search.probes.size()}};
  } else {
    j["best"] = nullptr;
  }
  j["message"] = r.message;
  auto& list = j["candidates"] = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < r.candidates.size(); ++i) {
    const Candidate& c = r.candidates[i];
    const bool ran = c.status == Candidate::Status::kPass || c.status == Candidate::Status::kFail;
    list.push_back({{"rank", i + 1},
                    {"prefill", pool_json(c.prefill)},
                    {"decode", pool_json(c.decode)},
                    {"gpus", c.gpus},
                    {"usd_per_hour", c.usd_per_hour},
                    {"status", status_name(c.status)},
                    {"attainment", ran ? nlohmann::ordered_json(c.attainment) : nullptr},
                    {"reason", c.reason}});
  }
  return j;
}

std::string csv_quote(const std::string& s) {
  std::string q = "\"";
  for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}

std::string to_csv(const PlanResult& r) {
  std::ostringstream o;
  o << "rank,prefill_gpu,prefill_tp,prefill_instances,decode_gpu,decode_tp,decode_instances,gpus,usd_per_hour,status,"
       "attainment,reason\n";
  char buf[64];
  for (std::size_t i = 0; i < r.candidates.size(); ++i) {
    const Candidate& c = r.candidates[i];
    const bool ran = c.status == Candidate::Status::kPass || c.status == Candidate::Status::kFail;
    std::snprintf(buf, sizeof buf, "%.6f", c.attainment);
    o << i + 1 << ',' << c.prefill.gpu << ',' << c.prefill.tp << ',' << c.prefill.instances << ',' << c.decode.gpu
      << ',' << c.decode.tp << ',' << c.decode.instances << ',' << c.gpus << ',' << c.usd_per_hour << ','
      << status_name(c.status) << ',' << (ran ? buf : "") << ',' << csv_quote(c.reason) << '\n';
  }
  return o.str();
}

void write_file(const fs::path& path, const std::string& contents) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << contents;
    if (!out) throw InputError(tmp.string(), "cannot write output file");
  }
  fs::rename(tmp, path);
}

int plan(const PlanCliOptions& o, const GlobalOptions& global) {
  const fs::path out_dir = o.out_dir.empty() ? fs::path("out") / fs::path(o.plan).stem() : fs::path(o.out_dir);
  for (const char* name : {"plan.json", "candidates.csv"}) fs::remove(out_dir / name);
  const PlanSpec spec = load_plan(o.plan, global.data_dir);
  LoadOptions load;
  load.data_dir = global.data_dir;
  load.overrides = o.overrides;
  load.seed_override = o.seed;
  const int jobs = o.jobs > 0 ? o.jobs : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const PlanResult result = run_plan(spec, load, jobs);
  const auto j = to_json(spec, result);

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw InputError(out_dir.string(), "cannot create output directory: " + ec.message());
  write_file(out_dir / "candidates.csv", to_csv(result));
  write_file(out_dir / "plan.json", j.dump(2) + "\n");  // last: its presence marks a complete run
  if (o.json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  if (o.quiet) return 0;
  std::printf("plan %s: target %g req/s at SLO attainment >= %g; %zu candidates, %zu evaluated in price order\n",
              spec.file.c_str(), spec.target_rps, spec.attainment, result.candidates_total, result.candidates.size());
  std::printf("rank  prefill                decode                 gpus    $/h  status   attainment\n");
  for (std::size_t i = 0; i < result.candidates.size(); ++i) {
    const Candidate& c = result.candidates[i];
    char p[64], d[64];
    std::snprintf(p, sizeof p, "%d x %s tp%d", c.prefill.instances, c.prefill.gpu.c_str(), c.prefill.tp);
    std::snprintf(d, sizeof d, "%d x %s tp%d", c.decode.instances, c.decode.gpu.c_str(), c.decode.tp);
    const bool ran = c.status == Candidate::Status::kPass || c.status == Candidate::Status::kFail;
    std::printf("%4zu  %-22s %-22s %4d %6.2f  %-8s %s\n", i + 1, p, d, c.gpus, c.usd_per_hour, status_name(c.status),
                ran ? std::to_string(c.attainment).c_str() : c.reason.c_str());
  }
  std::printf("%s\n", result.message.c_str());
  if (result.best_goodput) {
    const GoodputResult& g = *result.best_goodput;
    std::printf("its goodput: %.6g req/s (%.6g per GPU, %.6g per $/h); %s\n", g.search.goodput_rps,
                g.goodput_rps_per_gpu(), g.goodput_rps_per_usd_hour(), g.search.message.c_str());
  }
  std::printf("results: %s, %s\n", (out_dir / "plan.json").string().c_str(),
              (out_dir / "candidates.csv").string().c_str());
  return 0;
}

}  // namespace

Command add_plan_command(CLI::App& app, const GlobalOptions& global) {
  auto o = std::make_shared<PlanCliOptions>();
  app.add_option("plan", o->plan, "plan JSON file (base scenario, target rate, search space)")->required();
  app.add_option("--out", o->out_dir, "output directory (default: out/<plan name>)");
  app.add_option("--jobs", o->jobs, "simulations in parallel (default: hardware threads); results do not depend on it")
      ->check(CLI::Range(1, 1024));
  app.add_option("--seed", o->seed, "override the base scenario's seed")->check(CLI::NonNegativeNumber);
  app.add_option("--set", o->overrides, "override a base scenario value: PATH=VALUE");
  app.add_flag("--json", o->json, "print plan.json on stdout");
  app.add_flag("--quiet", o->quiet, "print nothing on success");
  return [o, &global] { return plan(*o, global); };
}

}  // namespace pdsim::cli
