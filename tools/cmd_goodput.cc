// pdsim goodput: the highest arrival rate meeting the SLO attainment target
// (search in sim/plan/goodput.h).
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "sim/config/scenario.h"
#include "sim/plan/goodput.h"
#include "tools/commands.h"

namespace pdsim::cli {

namespace {

struct GoodputCliOptions {
  ScenarioArgs in;
  GoodputOptions search;
  bool json = false;
};

nlohmann::ordered_json to_json(const Scenario& s, const GoodputOptions& o, const GoodputResult& g) {
  const RateSearch& r = g.search;
  nlohmann::ordered_json j;
  j["scenario"] = {{"name", s.name}, {"file", s.file}, {"seed", s.seed}};
  j["attainment_target"] = o.attainment;
  j["tolerance"] = o.tolerance;
  j["max_probes"] = o.max_probes;
  j["rate_knob"] = g.rate_knob;
  j["scenario_rate_rps"] = g.scenario_rate_rps;
  if (g.trace_native_rate_rps) {
    j["trace_native_rate_rps"] = *g.trace_native_rate_rps;
    j["goodput_time_scale"] = r.goodput_rps > 0 ? nlohmann::ordered_json(g.time_scale_for(r.goodput_rps)) : nullptr;
  }
  j["goodput_rps"] = r.goodput_rps;
  j["goodput_rps_per_gpu"] = g.goodput_rps_per_gpu();
  j["goodput_rps_per_usd_hour"] = g.usd_per_hour > 0 ? nlohmann::ordered_json(g.goodput_rps_per_usd_hour()) : nullptr;
  j["gpus"] = g.gpus;
  j["usd_per_hour"] = g.usd_per_hour;
  j["bracket_rps"] = {r.low_rps, r.high_rps ? nlohmann::ordered_json(*r.high_rps) : nullptr};
  j["bracket_relative_width"] =
      r.high_rps && r.low_rps > 0 ? nlohmann::ordered_json((*r.high_rps - r.low_rps) / r.low_rps) : nullptr;
  j["converged"] = r.converged;
  j["slo_feasible"] = r.slo_feasible;
  j["message"] = r.message;
  auto& probes = j["probes"] = nlohmann::ordered_json::array();
  for (const auto& p : r.probes) {
    nlohmann::ordered_json pj = {{"rate_rps", p.rate_rps}, {"attainment", p.attainment}, {"pass", p.pass}};
    if (g.trace_native_rate_rps) pj["time_scale"] = g.time_scale_for(p.rate_rps);
    probes.push_back(pj);
  }
  return j;
}

void print_table(const Scenario& s, const GoodputOptions& o, const GoodputResult& g) {
  const RateSearch& r = g.search;
  std::printf("goodput of %s (%s, %d GPUs, $%.2f/h) at SLO attainment >= %g, seed %llu\n", s.name.c_str(),
              s.model.name.c_str(), g.gpus, g.usd_per_hour, o.attainment, static_cast<unsigned long long>(s.seed));
  if (g.trace_native_rate_rps)
    std::printf("trace replay: native rate %.6g req/s (time_scale 1); rate knob %s = native / rate\n",
                *g.trace_native_rate_rps, g.rate_knob.c_str());
  std::printf("probe      rate_rps  attainment  pass\n");
  for (std::size_t i = 0; i < r.probes.size(); ++i)
    std::printf("%5zu  %12.6g  %10.4f  %s\n", i + 1, r.probes[i].rate_rps, r.probes[i].attainment,
                r.probes[i].pass ? "yes" : "no");
  std::printf("%s\n", r.message.c_str());
  std::printf("goodput %.6g req/s, %.6g req/s per GPU, %.6g req/s per $/h\n", r.goodput_rps, g.goodput_rps_per_gpu(),
              g.goodput_rps_per_usd_hour());
  if (g.trace_native_rate_rps && r.goodput_rps > 0)
    std::printf("at trace time_scale %.6g\n", g.time_scale_for(r.goodput_rps));
}

int goodput(const GoodputCliOptions& o, const GlobalOptions& global) {
  validate(o.search);
  const Scenario scenario = load_scenario(o.in.scenario, o.in.load_options(global));
  ProbeCallback progress;
  if (isatty(STDERR_FILENO))
    progress = [n = 0](const GoodputProbe& p) mutable {
      std::fprintf(stderr, "\rprobe %d: %.6g req/s -> attainment %.4f   ", ++n, p.rate_rps, p.attainment);
    };
  const GoodputResult result = find_goodput(scenario, o.search, progress);
  if (progress) std::fprintf(stderr, "\r%70s\r", "");
  if (o.json)
    std::cout << to_json(scenario, o.search, result).dump(2) << "\n";
  else
    print_table(scenario, o.search, result);
  return 0;
}

}  // namespace

Command add_goodput_command(CLI::App& app, const GlobalOptions& global) {
  auto o = std::make_shared<GoodputCliOptions>();
  o->in.add_to(app, "scenario JSON file (open-loop arrivals or a trace)");
  app.add_option("--attainment", o->search.attainment, "target SLO attainment, in (0, 1]")
      ->capture_default_str();
  app.add_option("--tolerance", o->search.tolerance, "stop when the bracket's relative width is at most this")
      ->capture_default_str();
  app.add_option("--max-probes", o->search.max_probes, "simulator runs at most")->capture_default_str();
  app.add_flag("--json", o->json, "print one JSON object");
  return [o, &global] { return goodput(*o, global); };
}

}  // namespace pdsim::cli
