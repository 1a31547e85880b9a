#include "sim/plan/plan.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <thread>
#include <tuple>

#include "sim/config/json_object.h"
#include "sim/core/error.h"
#include "sim/hw/gpu_spec.h"

namespace pdsim {

namespace fs = std::filesystem;

namespace {

std::string resolve_relative(const std::string& file, const std::string& path) {
  if (fs::path(path).is_absolute()) return path;
  return (fs::path(file).parent_path() / path).lexically_normal().string();
}

PoolSpace parse_space(JsonObject p, GpuCatalog& gpus) {
  PoolSpace s;
  const std::string where = p.file() + ": ";
  const nlohmann::json& g = p.raw("gpus");
  if (!g.is_array() || g.empty()) p.fail("gpus", "expected a non-empty list of GPU names");
  for (std::size_t i = 0; i < g.size(); ++i) {
    const std::string at = where + p.key_path("gpus") + "[" + std::to_string(i) + "]";
    if (!g[i].is_string()) throw InputError(at, "expected a GPU name (string)");
    const std::string name = g[i].get<std::string>();
    gpus.get(name, at);  // unknown name: error with the nearest known one
    if (std::find(s.gpus.begin(), s.gpus.end(), name) != s.gpus.end()) throw InputError(at, "duplicate GPU " + name);
    s.gpus.push_back(name);
  }
  const nlohmann::json& tp = p.has("tp") ? p.raw("tp") : nlohmann::json::array({1});
  if (!tp.is_array() || tp.empty()) p.fail("tp", "expected a non-empty list of tensor-parallel degrees");
  for (std::size_t i = 0; i < tp.size(); ++i) {
    const std::string at = where + p.key_path("tp") + "[" + std::to_string(i) + "]";
    if (!tp[i].is_number_integer() || tp[i].get<std::int64_t>() < 1 || tp[i].get<std::int64_t>() > 1024)
      throw InputError(at, "expected an integer in [1, 1024], got " + tp[i].dump());
    const int v = tp[i].get<int>();
    if (std::find(s.tp.begin(), s.tp.end(), v) != s.tp.end()) throw InputError(at, "duplicate tp " + tp[i].dump());
    s.tp.push_back(v);
  }
  const nlohmann::json& inst = p.raw("instances");
  const std::string at = where + p.key_path("instances");
  if (!inst.is_array() || inst.size() != 2 || !inst[0].is_number_integer() || !inst[1].is_number_integer())
    throw InputError(at, "expected [min, max] (inclusive integers), got " + inst.dump());
  const std::int64_t lo = inst[0].get<std::int64_t>(), hi = inst[1].get<std::int64_t>();
  if (lo < 1 || hi < lo || hi > 1024) throw InputError(at, "need 1 <= min <= max <= 1024, got " + inst.dump());
  s.min_instances = static_cast<int>(lo);
  s.max_instances = static_cast<int>(hi);
  p.finish();
  return s;
}

// Waves of `jobs` tasks on `jobs` threads; fn(i) must not throw except via
// the returned exception slot. Results land by index, so order is fixed.
template <typename Fn>
void parallel_for(std::size_t begin, std::size_t end, int jobs, Fn fn) {
  std::vector<std::exception_ptr> errors(end - begin);
  std::atomic<std::size_t> next{begin};
  auto worker = [&] {
    for (std::size_t i; (i = next.fetch_add(1)) < end;) {
      try {
        fn(i);
      } catch (...) {
        errors[i - begin] = std::current_exception();
      }
    }
  };
  const std::size_t threads = std::min<std::size_t>(static_cast<std::size_t>(jobs), end - begin);
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  for (const auto& e : errors)  // the first by index: deterministic
    if (e) std::rethrow_exception(e);
}

}  // namespace

const char* status_name(Candidate::Status s) {
  switch (s) {
    case Candidate::Status::kNotEvaluated: return "not_evaluated";
    case Candidate::Status::kPass: return "pass";
    case Candidate::Status::kFail: return "fail";
    case Candidate::Status::kSkipped: return "skipped";
  }
  return "?";
}

PlanSpec load_plan(const std::string& path, const std::string& data_dir) {
  const nlohmann::json doc = parse_json_file(path);
  JsonObject top(doc, path);
  PlanSpec p;
  p.file = path;
  p.scenario_path = resolve_relative(path, top.string("scenario"));
  if (!fs::exists(p.scenario_path)) top.fail("scenario", "cannot open scenario file " + p.scenario_path);
  p.target_rps = top.positive("target_rps");
  p.attainment = top.number("attainment", 0.9);
  if (!(p.attainment > 0 && p.attainment <= 1)) top.fail("attainment", "must be in (0, 1]");
  GpuCatalog gpus(data_dir + "/profiles/gpus");
  p.prefill = parse_space(top.object("prefill"), gpus);
  p.decode = parse_space(top.object("decode"), gpus);
  p.max_total_gpus = static_cast<int>(top.positive_integer("max_total_gpus", 0));
  p.goodput.attainment = p.attainment;
  if (auto g = top.optional_object("goodput")) {
    p.goodput.tolerance = g->number("tolerance", p.goodput.tolerance);
    if (!(p.goodput.tolerance > 0 && p.goodput.tolerance < 1)) g->fail("tolerance", "must be in (0, 1)");
    p.goodput.max_probes = static_cast<int>(g->positive_integer("max_probes", p.goodput.max_probes));
    if (p.goodput.max_probes < 2 || p.goodput.max_probes > 1000) g->fail("max_probes", "must be in [2, 1000]");
    g->finish();
  }
  top.finish();
  return p;
}

namespace {

// pp of a pool in the scenario document (1 when absent).
int pool_pp(const nlohmann::json& doc, const char* role, const std::string& file) {
  const auto& pool = doc["cluster"][role];
  if (!pool.contains("pp")) return 1;
  const auto& pp = pool["pp"];
  if (!pp.is_number_integer() || pp.get<std::int64_t>() < 1 || pp.get<std::int64_t>() > 1024)
    throw InputError(file + ": $.cluster." + role + ".pp", "expected an integer in [1, 1024], got " + pp.dump());
  return pp.get<int>();
}

}  // namespace

PlanResult run_plan(const PlanSpec& plan, const LoadOptions& load, int jobs) {
  PDSIM_CHECK(jobs >= 1, "jobs must be >= 1");
  // The base document with --set applied. It is not parsed as it stands: its
  // own pools may not fit the model (they are what the plan replaces).
  nlohmann::json base = parse_json_file(plan.scenario_path);
  for (const auto& o : load.overrides) apply_override(base, o, plan.scenario_path);
  const std::string& file = plan.scenario_path;
  auto is_object_at = [](const nlohmann::json& j, const char* key) { return j.contains(key) && j[key].is_object(); };
  if (!base.is_object() || !is_object_at(base, "cluster") ||
      base["cluster"].value("mode", nlohmann::json()) != nlohmann::json("disaggregated") ||
      !is_object_at(base["cluster"], "prefill") || !is_object_at(base["cluster"], "decode"))
    throw InputError(file + ": $.cluster",
                     "plan searches prefill:decode configurations: the scenario must be disaggregated, with "
                     "\"prefill\" and \"decode\" pools (named by " + plan.file + ": $.scenario)");
  const int prefill_pp = pool_pp(base, "prefill", file), decode_pp = pool_pp(base, "decode", file);
  LoadOptions candidate_load = load;
  candidate_load.overrides.clear();

  GpuCatalog gpus(load.data_dir + "/profiles/gpus");
  std::vector<Candidate> all;
  for (const auto& pg : plan.prefill.gpus)
    for (int ptp : plan.prefill.tp)
      for (int x = plan.prefill.min_instances; x <= plan.prefill.max_instances; ++x)
        for (const auto& dg : plan.decode.gpus)
          for (int dtp : plan.decode.tp)
            for (int y = plan.decode.min_instances; y <= plan.decode.max_instances; ++y) {
              Candidate c;
              c.prefill = {pg, ptp, x};
              c.decode = {dg, dtp, y};
              const int pgpus = x * ptp * prefill_pp, dgpus = y * dtp * decode_pp;
              c.gpus = pgpus + dgpus;
              if (plan.max_total_gpus > 0 && c.gpus > plan.max_total_gpus) continue;
              c.usd_per_hour = pgpus * gpus.get(pg, plan.file).price_usd_per_hour +
                               dgpus * gpus.get(dg, plan.file).price_usd_per_hour;
              c.index = all.size();
              all.push_back(c);
            }
  std::stable_sort(all.begin(), all.end(), [](const Candidate& a, const Candidate& b) {
    return std::tie(a.usd_per_hour, a.gpus, a.index) < std::tie(b.usd_per_hour, b.gpus, b.index);
  });

  auto scenario_of = [&](const Candidate& c) {
    nlohmann::json doc = base;
    for (auto [role, choice] : {std::pair{"prefill", &c.prefill}, std::pair{"decode", &c.decode}}) {
      doc["cluster"][role]["gpu"] = choice->gpu;
      doc["cluster"][role]["tp"] = choice->tp;
      doc["cluster"][role]["instances"] = choice->instances;
    }
    return parse_scenario(doc, file, candidate_load);
  };
  // The rate knob comes from the first candidate the model fits (the workload
  // is the same for all); closed loop is an InputError here.
  // If none fits, the plan cannot be answered: an InputError with the
  // cheapest candidate's reason (also what a broken base scenario gives).
  std::optional<RateKnob> knob_found;
  std::string first_error;
  for (const Candidate& c : all) {
    std::optional<Scenario> s;
    try {
      s = scenario_of(c);
    } catch (const InputError& e) {
      if (first_error.empty()) first_error = e.what();
      continue;  // this candidate is skipped below, with its reason
    }
    knob_found = rate_knob_of(*s);
    break;
  }
  if (!knob_found)
    throw InputError(plan.file, all.empty() ? "no candidate within max_total_gpus"
                                            : "no candidate in the search space can run the scenario; the cheapest: " +
                                                  first_error);
  const RateKnob knob = *knob_found;
  auto evaluate = [&](Candidate& c) {
    try {
      const Scenario s = scenario_of(c);
      c.attainment = attainment_at(s, knob, plan.target_rps);
      c.status = c.attainment >= plan.attainment ? Candidate::Status::kPass : Candidate::Status::kFail;
    } catch (const InputError& e) {
      c.status = Candidate::Status::kSkipped;
      c.reason = e.what();
    }
  };

  PlanResult result;
  result.candidates_total = all.size();
  std::optional<std::size_t> best;
  for (std::size_t begin = 0; begin < all.size() && !best; begin += static_cast<std::size_t>(jobs)) {
    const std::size_t end = std::min(all.size(), begin + static_cast<std::size_t>(jobs));
    parallel_for(begin, end, jobs, [&](std::size_t i) { evaluate(all[i]); });
    for (std::size_t i = begin; i < end && !best; ++i)
      if (all[i].status == Candidate::Status::kPass) best = i;
  }
  // Report up to the answer only: what lies past it depends on the wave size.
  const std::size_t keep = best ? *best + 1 : all.size();
  result.candidates.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(keep));
  result.best = best;
  if (best) {
    const Candidate& c = all[*best];
    const Scenario s = scenario_of(c);
    Scenario at_target = s;
    knob.apply(at_target, plan.target_rps);
    result.best_goodput = find_goodput(at_target, plan.goodput);
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "cheapest configuration meeting the SLO at %g req/s: %dP%dD (prefill %d x %s tp %d, decode %d x %s "
                  "tp %d), %d GPUs, $%.2f/h",
                  plan.target_rps, c.prefill.instances, c.decode.instances, c.prefill.instances, c.prefill.gpu.c_str(),
                  c.prefill.tp, c.decode.instances, c.decode.gpu.c_str(), c.decode.tp, c.gpus, c.usd_per_hour);
    result.message = buf;
  } else {
    result.message = "no configuration in the search space meets the SLO at the target rate";
  }
  return result;
}

}  // namespace pdsim
