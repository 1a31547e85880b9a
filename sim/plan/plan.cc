#include "sim/plan/plan.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <mutex>
#include <thread>
#include <tuple>

#include "sim/cluster/simulator.h"
#include "sim/config/json_object.h"
#include "sim/core/error.h"
#include "sim/hw/gpu_spec.h"
#include "sim/metrics/report.h"

namespace pdsim {

namespace fs = std::filesystem;

namespace {

std::string resolve_relative(const std::string& file, const std::string& path) {
  if (fs::path(path).is_absolute()) return path;
  return (fs::path(file).parent_path() / path).lexically_normal().string();
}

std::vector<int> int_list(JsonObject& p, const std::string& key, std::vector<int> fallback, int max) {
  const std::string where = p.file() + ": ";
  if (!p.has(key)) return fallback;
  const nlohmann::json& l = p.raw(key);
  if (!l.is_array() || l.empty()) p.fail(key, "expected a non-empty list of integers");
  std::vector<int> out;
  for (std::size_t i = 0; i < l.size(); ++i) {
    const std::string at = where + p.key_path(key) + "[" + std::to_string(i) + "]";
    if (!l[i].is_number_integer() || l[i].get<std::int64_t>() < 1 || l[i].get<std::int64_t>() > max)
      throw InputError(at, "expected an integer in [1, " + std::to_string(max) + "], got " + l[i].dump());
    const int v = l[i].get<int>();
    if (std::find(out.begin(), out.end(), v) != out.end()) throw InputError(at, "duplicate " + l[i].dump());
    out.push_back(v);
  }
  return out;
}

PoolSpace parse_space(JsonObject p, GpuCatalog& gpus, bool colocated) {
  PoolSpace s;
  const std::string where = p.file() + ": ";
  const nlohmann::json& g = p.raw("gpus");
  if (!g.is_array() || g.empty()) p.fail("gpus", "expected a non-empty list of GPU names or {name, price_usd_per_hour, max_count}");
  for (std::size_t i = 0; i < g.size(); ++i) {
    const std::string at = where + p.key_path("gpus") + "[" + std::to_string(i) + "]";
    std::string name;
    GpuLimit limit;
    if (g[i].is_string()) {
      name = g[i].get<std::string>();
    } else if (g[i].is_object()) {
      JsonObject o(g[i], p.file(), p.key_path("gpus") + "[" + std::to_string(i) + "]");
      name = o.string("name");
      if (o.has("price_usd_per_hour")) {
        const double price = o.number("price_usd_per_hour");
        if (!(price >= 0) || !std::isfinite(price)) o.fail("price_usd_per_hour", "must be >= 0");
        limit.price_usd_per_hour = price;
      }
      limit.max_count = static_cast<int>(o.integer_in("max_count", 1, 1'000'000, 0));  // 0: no limit
      o.finish();
    } else {
      throw InputError(at, "expected a GPU name or {name, price_usd_per_hour, max_count}");
    }
    gpus.get(name, at);  // unknown name: error with the nearest known one
    if (std::find(s.gpus.begin(), s.gpus.end(), name) != s.gpus.end()) throw InputError(at, "duplicate GPU " + name);
    s.gpus.push_back(name);
    s.limits[name] = limit;
  }
  s.tp = int_list(p, "tp", {1}, 1024);
  s.pp = int_list(p, "pp", {1}, 1024);
  if (colocated && p.has("policies")) {
    const nlohmann::json& l = p.raw("policies");
    if (!l.is_array() || l.empty()) p.fail("policies", "expected a non-empty list of prefill_priority / chunked");
    s.policies.clear();
    for (std::size_t i = 0; i < l.size(); ++i) {
      const std::string at = where + p.key_path("policies") + "[" + std::to_string(i) + "]";
      if (!l[i].is_string() || (l[i] != "prefill_priority" && l[i] != "chunked"))
        throw InputError(at, "expected \"prefill_priority\" or \"chunked\", got " + l[i].dump());
      if (std::find(s.policies.begin(), s.policies.end(), l[i].get<std::string>()) != s.policies.end())
        throw InputError(at, "duplicate policy " + l[i].dump());
      s.policies.push_back(l[i].get<std::string>());
    }
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

GoodputOptions parse_goodput(std::optional<JsonObject> g, GoodputOptions o) {
  if (!g) return o;
  o.tolerance = g->number("tolerance", o.tolerance);
  if (!(o.tolerance > 0 && o.tolerance < 1)) g->fail("tolerance", "must be in (0, 1)");
  o.max_probes = static_cast<int>(g->positive_integer("max_probes", o.max_probes));
  if (o.max_probes < 2 || o.max_probes > 1000) g->fail("max_probes", "must be in [2, 1000]");
  g->finish();
  return o;
}

// Runs fn(i) for i in [begin, end) on up to `jobs` threads. Exceptions are
// kept per index; the first by index is rethrown (deterministic).
template <typename Fn>
void parallel_for(std::size_t begin, std::size_t end, int jobs, Fn fn) {
  if (end <= begin) return;
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
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// parallel_for over processes too: task i runs on process (i - begin) %
// size; save(i) serializes its result there and load(i, text) installs it on
// every other process. A task that threw anywhere is rethrown everywhere
// (as an InternalError naming the message), so no process is left waiting.
template <typename Fn, typename Save, typename Load>
void distributed_for(TaskExchange* ex, std::size_t begin, std::size_t end, int jobs, Fn fn, Save save, Load load) {
  if (!ex || ex->size() == 1) {
    parallel_for(begin, end, jobs, fn);
    return;
  }
  const auto size = static_cast<std::size_t>(ex->size()), rank = static_cast<std::size_t>(ex->rank());
  std::vector<std::size_t> mine;
  for (std::size_t i = begin + rank; i < end; i += size) mine.push_back(i);
  std::string error;
  try {
    parallel_for(0, mine.size(), jobs, [&](std::size_t k) { fn(mine[k]); });
  } catch (const std::exception& e) {
    error = e.what();
  }
  std::vector<std::string> out;
  for (std::size_t i : mine) out.push_back(error.empty() ? "+" + save(i) : "!" + error);
  const auto all = ex->all_gather(out);
  PDSIM_CHECK(all.size() == size, "all_gather returned a wrong number of processes");
  for (std::size_t r = 0; r < size; ++r)
    for (std::size_t k = 0; k < all[r].size(); ++k) {
      const std::string& text = all[r][k];
      PDSIM_CHECK(!text.empty(), "empty task result");
      if (text[0] == '!') throw InternalError("task failed on process " + std::to_string(r) + ": " + text.substr(1));
      if (r != rank) load(begin + r + k * size, text.substr(1));
    }
}

nlohmann::json goodput_to_json(const GoodputResult& g) {
  nlohmann::json probes = nlohmann::json::array();
  for (const auto& p : g.search.probes) probes.push_back({p.rate_rps, p.attainment, p.pass});
  return {{"g", g.search.goodput_rps},
          {"lo", g.search.low_rps},
          {"hi", g.search.high_rps ? nlohmann::json(*g.search.high_rps) : nlohmann::json(nullptr)},
          {"f", g.search.slo_feasible},
          {"c", g.search.converged},
          {"m", g.search.message},
          {"p", probes},
          {"k", g.rate_knob},
          {"r0", g.scenario_rate_rps},
          {"n", g.trace_native_rate_rps ? nlohmann::json(*g.trace_native_rate_rps) : nlohmann::json(nullptr)},
          {"gpus", g.gpus},
          {"usd", g.usd_per_hour}};
}

GoodputResult goodput_from_json(const nlohmann::json& j) {
  GoodputResult g;
  g.search.goodput_rps = j["g"];
  g.search.low_rps = j["lo"];
  if (!j["hi"].is_null()) g.search.high_rps = j["hi"].get<double>();
  g.search.slo_feasible = j["f"];
  g.search.converged = j["c"];
  g.search.message = j["m"];
  for (const auto& p : j["p"]) g.search.probes.push_back({p[0].get<double>(), p[1].get<double>(), p[2].get<bool>()});
  g.rate_knob = j["k"];
  g.scenario_rate_rps = j["r0"];
  if (!j["n"].is_null()) g.trace_native_rate_rps = j["n"].get<double>();
  g.gpus = j["gpus"];
  g.usd_per_hour = j["usd"];
  return g;
}

// What evaluating a candidate changes, and back.
std::string save_candidate(const Candidate& c) {
  return nlohmann::json{{"s", static_cast<int>(c.status)},
                        {"a", c.attainment},
                        {"am", c.attainment_min},
                        {"rec", c.recommended_rps},
                        {"r", c.reason},
                        {"g", c.goodput ? goodput_to_json(*c.goodput) : nlohmann::json(nullptr)}}
      .dump();
}

void load_candidate(Candidate& c, const std::string& text) {
  const auto j = nlohmann::json::parse(text);
  c.status = static_cast<Candidate::Status>(j["s"].get<int>());
  c.attainment = j["a"];
  c.attainment_min = j["am"];
  c.recommended_rps = j["rec"];
  c.reason = j["r"];
  if (j["g"].is_null()) c.goodput.reset();
  else c.goodput = goodput_from_json(j["g"]);
}

std::string save_phase(const PhaseConfig& ph) {
  return nlohmann::json{{"g", ph.goodput_rps}, {"c", ph.converged}, {"p", ph.probes}, {"s", ph.skipped}, {"r", ph.reason}}
      .dump();
}

void load_phase(PhaseConfig& ph, const std::string& text) {
  const auto j = nlohmann::json::parse(text);
  ph.goodput_rps = j["g"];
  ph.converged = j["c"];
  ph.probes = j["p"];
  ph.skipped = j["s"];
  ph.reason = j["r"];
}

// Counts finished tasks of a stage for the progress callback (thread-safe).
class StageProgress {
 public:
  StageProgress(const PlanProgress& cb, std::string stage, std::size_t total, bool at_most = false)
      : cb_(cb), stage_(std::move(stage)), total_(total), at_most_(at_most) {
    if (cb_) cb_(stage_, 0, total_, at_most_);
  }
  ~StageProgress() {
    if (cb_ && done_ < total_) cb_(stage_, done_, done_, at_most_);  // stopped early
  }
  void tick() {
    if (!cb_) return;
    std::lock_guard<std::mutex> lock(mu_);
    cb_(stage_, ++done_, total_, at_most_);
  }

 private:
  const PlanProgress& cb_;
  std::string stage_;
  std::size_t total_, done_ = 0;
  bool at_most_;
  std::mutex mu_;
};

RunPoint point_of(const Scenario& s, const SimResult& r, double rate_rps) {
  const auto summary = make_summary(s, r);
  RunPoint p;
  p.rate_rps = rate_rps;
  p.attainment = summary["slo"]["attainment"].get<double>();
  p.output_tokens_per_s_per_gpu = summary["throughput"]["output_tokens_per_s_per_gpu"].get<double>();
  const double tpot_mean = summary["tpot_s"]["mean"].is_number() ? summary["tpot_s"]["mean"].get<double>() : 0.0;
  p.tokens_per_s_per_user = tpot_mean > 0 ? 1.0 / tpot_mean : 0.0;
  p.ttft_p90_s = summary["ttft_s"]["p90"].is_number() ? summary["ttft_s"]["p90"].get<double>() : 0.0;
  p.tpot_p90_s = summary["tpot_s"]["p90"].is_number() ? summary["tpot_s"]["p90"].get<double>() : 0.0;
  return p;
}

// One full simulation of `scenario` at `rate_rps`; counts it in `*runs`.
RunPoint run_at(const Scenario& scenario, const RateKnob& knob, double rate_rps, std::atomic<std::size_t>* runs) {
  ++*runs;
  Scenario s = scenario;
  knob.apply(s, rate_rps);
  return point_of(s, simulate(s, generate_requests(s.workload, s.seed)), rate_rps);
}

// Pool keys a role accepts, besides gpu/instances/tp/pp (and policy).
const std::vector<std::string>& pool_keys(const std::string& role) {
  static const std::vector<std::string> prefill = {"max_batch_tokens", "max_batch_requests", "memory_utilization",
                                                   "block_tokens"};
  static const std::vector<std::string> decode = {"max_batch_size", "memory_utilization", "block_tokens"};
  static const std::vector<std::string> colocated = {"max_batch_tokens", "max_batch_requests", "max_batch_size",
                                                     "memory_utilization", "block_tokens", "chunk_tokens"};
  return role == "prefill" ? prefill : role == "decode" ? decode : colocated;
}

// The pool object for `role` from the base cluster: the keys `role` accepts,
// taken from the base pool of the same role, else from the others.
nlohmann::json pool_from_base(const nlohmann::json& cluster, const std::string& role, const PoolChoice& c) {
  nlohmann::json pool = nlohmann::json::object();
  std::vector<std::string> sources = {role};
  for (const char* other : {"prefill", "decode", "colocated"})
    if (role != other) sources.push_back(other);
  for (const auto& key : pool_keys(role))
    for (const auto& src : sources)
      if (cluster.contains(src) && cluster[src].is_object() && cluster[src].contains(key)) {
        pool[key] = cluster[src][key];
        break;
      }
  pool["gpu"] = c.gpu;
  pool["tp"] = c.tp;
  pool["pp"] = c.pp;
  pool["instances"] = c.instances;
  if (role == "colocated") {
    pool["policy"] = c.policy;
    if (c.policy != "chunked") pool.erase("chunk_tokens");
  }
  return pool;
}

}  // namespace

const char* objective_name(Objective o) {
  switch (o) {
    case Objective::kTargetRate: return "target_rps";
    case Objective::kGoodputPerGpu: return "goodput_per_gpu";
    case Objective::kGoodputPerUsd: return "goodput_per_usd";
  }
  return "?";
}

const char* status_name(Candidate::Status s) {
  switch (s) {
    case Candidate::Status::kNotEvaluated: return "not_evaluated";
    case Candidate::Status::kPass: return "pass";
    case Candidate::Status::kFail: return "fail";
    case Candidate::Status::kSkipped: return "skipped";
    case Candidate::Status::kPruned: return "pruned";
  }
  return "?";
}

std::string Candidate::name() const {
  if (colocated) return std::to_string(pool.instances) + "C";
  return std::to_string(prefill.instances) + "P" + std::to_string(decode.instances) + "D";
}


PlanSpec load_plan(const std::string& path, const std::string& data_dir) {
  const nlohmann::json doc = parse_json_file(path);
  JsonObject top(doc, path);
  PlanSpec p;
  p.file = path;
  p.scenario_path = resolve_relative(path, top.string("scenario"));
  if (!fs::exists(p.scenario_path)) top.fail("scenario", "cannot open scenario file " + p.scenario_path);
  const std::string objective =
      top.choice("objective", {"target_rps", "goodput_per_gpu", "goodput_per_usd"}, "target_rps");
  p.objective = objective == "target_rps"        ? Objective::kTargetRate
                : objective == "goodput_per_gpu" ? Objective::kGoodputPerGpu
                                                 : Objective::kGoodputPerUsd;
  if (p.objective == Objective::kTargetRate) {
    p.target_rps = top.positive("target_rps");
  } else if (top.has("target_rps")) {
    top.fail("target_rps", "only with \"objective\": \"target_rps\" (objective " + objective + " maximizes goodput)");
  }
  p.attainment = top.number("attainment", 0.9);
  if (!(p.attainment > 0 && p.attainment <= 1)) top.fail("attainment", "must be in (0, 1]");
  if (top.has("slo")) {
    if (!top.raw("slo").is_object()) top.fail("slo", "expected an object like the scenario's slo");
    p.slo = top.raw("slo");
  }
  p.disaggregated = false;
  if (top.has("modes")) {
    const nlohmann::json& m = top.raw("modes");
    if (!m.is_array() || m.empty()) top.fail("modes", "expected a non-empty list of disaggregated / colocated");
    for (std::size_t i = 0; i < m.size(); ++i) {
      const std::string at = path + ": $.modes[" + std::to_string(i) + "]";
      if (m[i] == "disaggregated") p.disaggregated = true;
      else if (m[i] == "colocated") p.colocated = true;
      else throw InputError(at, "expected \"disaggregated\" or \"colocated\", got " + m[i].dump());
    }
  } else {
    p.disaggregated = true;
  }
  GpuCatalog gpus(data_dir + "/profiles/gpus");
  if (p.disaggregated) {
    p.prefill = parse_space(top.object("prefill"), gpus, false);
    p.decode = parse_space(top.object("decode"), gpus, false);
  } else {
    for (const char* k : {"prefill", "decode"})
      if (top.has(k)) top.fail(k, "only with \"disaggregated\" in $.modes");
  }
  if (p.colocated) {
    p.colocated_space = parse_space(top.object("colocated"), gpus, true);
  } else if (top.has("colocated")) {
    top.fail("colocated", "only with \"colocated\" in $.modes");
  }
  // Range-checked before narrowing to int (2^32 + 2 would pass as 2).
  p.max_total_gpus = static_cast<int>(top.integer_in("max_total_gpus", 1, 1'000'000, 0));  // 0: no limit
  p.finalists = static_cast<int>(top.integer_in("finalists", 1, 100, 3));
  p.verify_seeds = static_cast<int>(top.integer_in("verify_seeds", 0, 20, 2));
  p.robust_margin = top.number("robust_margin", 0.05);
  if (!(p.robust_margin >= 0 && p.robust_margin <= 1)) top.fail("robust_margin", "must be in [0, 1]");
  p.exhaustive = top.boolean("exhaustive", false);
  p.prune_margin = top.number("prune_margin", 0.1);
  if (!(p.prune_margin >= 0 && p.prune_margin <= 10)) top.fail("prune_margin", "must be in [0, 10]");
  p.goodput.attainment = p.phase_goodput.attainment = p.attainment;
  p.goodput = parse_goodput(top.optional_object("goodput"), p.goodput);
  p.phase_goodput = parse_goodput(top.optional_object("phase_goodput"), p.phase_goodput);
  if (top.has("sweep")) {
    const nlohmann::json& l = top.raw("sweep");
    if (!l.is_array() || l.empty()) top.fail("sweep", "expected a non-empty list of rate fractions");
    p.sweep.clear();
    for (std::size_t i = 0; i < l.size(); ++i) {
      if (!l[i].is_number() || !(l[i].get<double>() > 0) || l[i].get<double>() > 100)
        throw InputError(path + ": $.sweep[" + std::to_string(i) + "]", "expected a number in (0, 100]");
      p.sweep.push_back(l[i].get<double>());
    }
  }
  top.finish();
  return p;
}

namespace {

// Everything run_plan and candidate_document share: the base document and
// how to turn a candidate into a scenario.
struct Base {
  nlohmann::json doc;  // --set and the plan's slo applied
  std::string file;    // the base scenario, anchors relative paths
  LoadOptions load;    // overrides cleared (already in doc)
  const PlanSpec* plan = nullptr;

  Base(const PlanSpec& p, const LoadOptions& l) : file(p.scenario_path), load(l), plan(&p) {
    doc = parse_json_file(file);
    for (const auto& o : l.overrides) apply_override(doc, o, file);
    load.overrides.clear();
    auto is_object_at = [](const nlohmann::json& j, const char* key) { return j.contains(key) && j[key].is_object(); };
    if (!doc.is_object() || !is_object_at(doc, "cluster"))
      throw InputError(file + ": $.cluster", "expected an object (named by " + p.file + ": $.scenario)");
    if (p.slo) doc["slo"] = *p.slo;
  }

  double price(const PoolSpace& space, const std::string& gpu, double profile_price) const {
    const auto it = space.limits.find(gpu);
    return it != space.limits.end() && it->second.price_usd_per_hour ? *it->second.price_usd_per_hour : profile_price;
  }

  nlohmann::json document(const Candidate& c) const {
    nlohmann::json d = doc;
    nlohmann::json cluster = nlohmann::json::object();
    const nlohmann::json& b = doc["cluster"];
    if (c.colocated) {
      cluster["mode"] = "colocated";
      cluster["colocated"] = pool_from_base(b, "colocated", c.pool);
    } else {
      cluster["mode"] = "disaggregated";
      cluster["prefill"] = pool_from_base(b, "prefill", c.prefill);
      cluster["decode"] = pool_from_base(b, "decode", c.decode);
      // A colocated base has no KV link: 400 Gb/s per prefill instance (the scenario default).
      cluster["kv_transfer"] = b.contains("kv_transfer") ? b["kv_transfer"] : nlohmann::json{{"bandwidth_gbps", 400}};
    }
    if (b.contains("router")) cluster["router"] = b["router"];
    d["cluster"] = cluster;
    return d;
  }

  // Parsed, with the plan's prices. Throws InputError when the model does not fit.
  Scenario scenario(const Candidate& c) const {
    Scenario s = parse_scenario(document(c), file, load);
    if (c.colocated) {
      s.colocated.gpu.price_usd_per_hour = price(plan->colocated_space, c.pool.gpu, s.colocated.gpu.price_usd_per_hour);
    } else {
      s.prefill.gpu.price_usd_per_hour = price(plan->prefill, c.prefill.gpu, s.prefill.gpu.price_usd_per_hour);
      s.decode.gpu.price_usd_per_hour = price(plan->decode, c.decode.gpu, s.decode.gpu.price_usd_per_hour);
    }
    return s;
  }
};

Candidate disaggregated_candidate(const PoolChoice& p, const PoolChoice& d) {
  Candidate c;
  c.prefill = p;
  c.decode = d;
  return c;
}

Candidate colocated_candidate(const PoolChoice& pool) {
  Candidate c;
  c.colocated = true;
  c.pool = pool;
  return c;
}

double score_of(const Candidate& c, Objective o) {
  if (!c.goodput) return 0;
  const double g = c.recommended_rps;
  if (o == Objective::kGoodputPerUsd) return c.usd_per_hour > 0 ? g / c.usd_per_hour : 0;
  return g / c.gpus;
}

double estimated_score(const Candidate& c, Objective o) {
  if (o == Objective::kGoodputPerUsd) return c.usd_per_hour > 0 ? c.estimated_rps / c.usd_per_hour : 0;
  return c.estimated_rps / c.gpus;
}

}  // namespace

nlohmann::json candidate_document(const PlanSpec& plan, const LoadOptions& load, const Candidate& c,
                                  double rate_rps) {
  const Base base(plan, load);
  nlohmann::json d = base.document(c);
  if (rate_rps > 0) {
    const Scenario s = base.scenario(c);
    const RateKnob knob = rate_knob_of(s);
    if (knob.trace_native_rate_rps)
      d["workload"]["trace"]["time_scale"] = *knob.trace_native_rate_rps / rate_rps;
    else
      d["workload"]["arrival"]["rate_rps"] = rate_rps;
  }
  return d;
}

PlanResult run_plan(const PlanSpec& plan, const LoadOptions& load, int jobs, const PlanProgress& progress,
                    TaskExchange* exchange) {
  PDSIM_CHECK(jobs >= 1, "jobs must be >= 1");
  const Base base(plan, load);
  GpuCatalog gpus(load.data_dir + "/profiles/gpus");
  PlanResult result;
  std::atomic<std::size_t> runs{0};
  // find_goodput (sim/plan/goodput.h) with every probe counted.
  auto goodput_of = [&](const Scenario& s) {
    const RateKnob k = rate_knob_of(s);
    return find_goodput_with(s, k, plan.goodput, [&](double rate) { return run_at(s, k, rate, &runs).attainment; });
  };

  // 1. Phase configurations.
  auto add_phases = [&](const std::string& role, const PoolSpace& space) {
    const std::vector<std::string> no_policy = {""};
    for (const auto& gpu : space.gpus)
      for (int tp : space.tp)
        for (int pp : space.pp)
          for (const auto& policy : role == "colocated" ? space.policies : no_policy) {
            PhaseConfig ph;
            ph.role = role;
            ph.pool = {gpu, tp, 1, pp, policy};
            ph.gpus = tp * pp;
            ph.usd_per_hour = ph.gpus * base.price(space, gpu, gpus.get(gpu, plan.file).price_usd_per_hour);
            result.phases.push_back(ph);
          }
  };
  if (plan.disaggregated) {
    add_phases("prefill", plan.prefill);
    add_phases("decode", plan.decode);
  }
  if (plan.colocated) add_phases("colocated", plan.colocated_space);

  // The scenario measuring one phase configuration (decode: fed by `feeder`).
  auto phase_candidate = [&](const PhaseConfig& ph, const PoolChoice* feeder) {
    if (ph.role == "colocated") return colocated_candidate(ph.pool);
    if (ph.role == "prefill") return disaggregated_candidate(ph.pool, ph.pool);
    return disaggregated_candidate(feeder ? *feeder : ph.pool, ph.pool);
  };
  // The rate knob, from the first phase scenario the model fits (the workload
  // is the same for all; closed loop is an InputError here). If none fits,
  // the plan cannot be answered: an InputError with the first reason.
  std::optional<RateKnob> knob_found;
  std::string first_error;
  for (const PhaseConfig& ph : result.phases) {
    std::optional<Scenario> s;
    try {
      s = base.scenario(phase_candidate(ph, nullptr));
    } catch (const InputError& e) {
      if (first_error.empty()) first_error = e.what();
      continue;
    }
    knob_found = rate_knob_of(*s);
    break;
  }
  if (!knob_found)
    throw InputError(plan.file, "no configuration in the search space can run the scenario; the first: " + first_error);
  const RateKnob knob = *knob_found;

  auto search_phase = [&](PhaseConfig& ph, const std::function<double(double)>& probe) {
    GoodputOptions o = plan.phase_goodput;
    o.min_rate_rps = knob.min_rate_rps;
    const RateSearch rs = search_goodput(probe, knob.scenario_rate_rps, o);
    ph.goodput_rps = rs.goodput_rps;
    ph.converged = rs.converged;
    ph.probes = rs.probes.size();
  };
  auto measure = [&](PhaseConfig& ph, const PhaseConfig* feeder) {
    try {
      Scenario s = base.scenario(phase_candidate(ph, feeder ? &feeder->pool : nullptr));
      if (ph.role == "prefill") {
        search_phase(ph, [&](double rate) {
          Scenario t = s;
          knob.apply(t, rate);
          t.slo.tpot_s = 1e30;
          ++runs;
          auto requests = generate_requests(t.workload, t.seed);
          for (auto& r : requests) r.output_tokens = 1;  // ends at the first token: no decode
          return make_summary(t, simulate(t, requests))["slo"]["attainment"].get<double>();
        });
      } else if (ph.role == "decode") {
        search_phase(ph, [&](double rate) {
          Scenario t = s;
          knob.apply(t, rate);
          t.slo.ttft_s = 1e30;
          t.prefill.instances = static_cast<int>(std::clamp(std::ceil(2 * rate / feeder->goodput_rps), 1.0, 4096.0));
          ++runs;
          return make_summary(t, simulate(t, generate_requests(t.workload, t.seed)))["slo"]["attainment"].get<double>();
        });
      } else {
        search_phase(ph, [&](double rate) { return run_at(s, knob, rate, &runs).attainment; });
      }
    } catch (const InputError& e) {
      ph.skipped = true;
      ph.reason = e.what();
      ph.goodput_rps = 0;
    }
  };
  std::vector<std::size_t> first_stage, decode_stage;
  for (std::size_t i = 0; i < result.phases.size(); ++i)
    (result.phases[i].role == "decode" ? decode_stage : first_stage).push_back(i);
  {
    StageProgress bar(progress, "per-instance goodput (prefill, colocated)", first_stage.size());
    distributed_for(
        exchange, 0, first_stage.size(), jobs,
        [&](std::size_t k) {
          measure(result.phases[first_stage[k]], nullptr);
          bar.tick();
        },
        [&](std::size_t k) { return save_phase(result.phases[first_stage[k]]); },
        [&](std::size_t k, const std::string& t) { load_phase(result.phases[first_stage[k]], t); });
  }
  // The decode pool is fed by the prefill configuration with the highest goodput per GPU.
  const PhaseConfig* feeder = nullptr;
  for (const PhaseConfig& ph : result.phases)
    if (ph.role == "prefill" && ph.goodput_rps > 0 &&
        (!feeder || ph.goodput_rps / ph.gpus > feeder->goodput_rps / feeder->gpus))
      feeder = &ph;
  if (!decode_stage.empty()) {
    StageProgress bar(progress, "per-instance goodput (decode)", decode_stage.size());
    distributed_for(
        exchange, 0, decode_stage.size(), jobs,
        [&](std::size_t k) {
          PhaseConfig& ph = result.phases[decode_stage[k]];
          if (feeder) {
            measure(ph, feeder);
          } else {
            ph.skipped = true;
            ph.reason = "no prefill configuration meets the TTFT bound at any load";
          }
          bar.tick();
        },
        [&](std::size_t k) { return save_phase(result.phases[decode_stage[k]]); },
        [&](std::size_t k, const std::string& t) { load_phase(result.phases[decode_stage[k]], t); });
  }

  // 2. Candidates.
  auto limit_ok = [](const PoolSpace& space, const std::string& gpu, int count) {
    const auto it = space.limits.find(gpu);
    return it == space.limits.end() || it->second.max_count == 0 || count <= it->second.max_count;
  };
  std::vector<Candidate>& all = result.candidates;
  auto push = [&](Candidate c, const PhaseConfig& a, const PhaseConfig* b) {
    if (plan.max_total_gpus > 0 && c.gpus > plan.max_total_gpus) return;
    const PhaseConfig* why = a.skipped ? &a : (b && b->skipped ? b : nullptr);
    if (why) {
      c.status = Candidate::Status::kSkipped;
      c.reason = why->role + ": " + why->reason;
    }
    c.index = all.size();
    all.push_back(std::move(c));
  };
  for (const PhaseConfig& pp : result.phases) {
    if (pp.role == "colocated") {
      for (int n = plan.colocated_space.min_instances; n <= plan.colocated_space.max_instances; ++n) {
        if (!limit_ok(plan.colocated_space, pp.pool.gpu, n * pp.gpus)) continue;
        PoolChoice pool = pp.pool;
        pool.instances = n;
        Candidate c = colocated_candidate(pool);
        c.gpus = n * pp.gpus;
        c.usd_per_hour = n * pp.usd_per_hour;
        c.estimated_rps = n * pp.goodput_rps;
        push(c, pp, nullptr);
      }
    }
    if (pp.role != "prefill") continue;
    for (int x = plan.prefill.min_instances; x <= plan.prefill.max_instances; ++x) {
      if (!limit_ok(plan.prefill, pp.pool.gpu, x * pp.gpus)) continue;
      for (const PhaseConfig& dp : result.phases) {
        if (dp.role != "decode") continue;
        for (int y = plan.decode.min_instances; y <= plan.decode.max_instances; ++y) {
          if (!limit_ok(plan.decode, dp.pool.gpu, y * dp.gpus)) continue;
          PoolChoice p = pp.pool, d = dp.pool;
          p.instances = x;
          d.instances = y;
          Candidate c = disaggregated_candidate(p, d);
          c.gpus = x * pp.gpus + y * dp.gpus;
          c.usd_per_hour = x * pp.usd_per_hour + y * dp.usd_per_hour;
          c.estimated_rps = std::min(x * pp.goodput_rps, y * dp.goodput_rps);
          push(c, pp, &dp);
        }
      }
    }
  }
  result.candidates_total = all.size();
  if (all.empty()) throw InputError(plan.file, "no candidate within max_total_gpus and the GPU max_count limits");

  // 3. Verification, in a fixed order.
  const bool target = plan.objective == Objective::kTargetRate;
  std::vector<std::size_t> order;
  char buf[512];
  for (Candidate& c : all) {
    if (c.status == Candidate::Status::kSkipped) continue;
    if (target && !plan.exhaustive && c.estimated_rps * (1 + plan.prune_margin) < plan.target_rps) {
      std::snprintf(buf, sizeof buf, "estimated capacity %.4g req/s < target / (1 + %g)", c.estimated_rps,
                    plan.prune_margin);
      c.status = Candidate::Status::kPruned;
      c.reason = buf;
      continue;
    }
    if (!target && !plan.exhaustive && !(c.estimated_rps > 0)) {
      c.status = Candidate::Status::kPruned;
      c.reason = "a phase meets its SLO bound at no load";
      continue;
    }
    order.push_back(c.index);
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const Candidate &ca = all[a], &cb = all[b];
    if (!target) {
      const double sa = estimated_score(ca, plan.objective), sb = estimated_score(cb, plan.objective);
      if (sa != sb) return sa > sb;
    }
    return std::tie(ca.usd_per_hour, ca.gpus, ca.index) < std::tie(cb.usd_per_hour, cb.gpus, cb.index);
  });
  // Robust pass at `rate`: the attainment on the scenario seed (unless
  // skip_own: already known) and on seed+1 .. seed+verify_seeds is at least
  // the target + robust_margin (at most 1). Returns the minimum seen (it
  // stops at the first seed below the bar).
  const double bar = std::min(1.0, plan.attainment + plan.robust_margin);
  auto min_over_seeds = [&](const Scenario& s, double rate, bool skip_own) {
    double worst = 1;
    for (int k = skip_own ? 1 : 0; k <= plan.verify_seeds; ++k) {
      Scenario t = s;
      t.seed = s.seed + static_cast<std::uint64_t>(k);
      worst = std::min(worst, run_at(t, knob, rate, &runs).attainment);
      if (worst < bar) break;
    }
    return worst;
  };
  // The rate G (1 - 0.05 k) for the smallest k >= 1 such that both it and
  // the step above it pass robustly: one 5% guard band below the highest
  // robust rate, since where attainment collapses moves with the seed.
  auto recommend = [&](Candidate& c, const Scenario& s) {
    const double g = c.goodput->search.goodput_rps;
    c.recommended_rps = 0;
    bool above = false;  // did step k - 1 pass?
    for (int k = 0; k < 20 && g > 0; ++k) {
      const double rate = g * (1 - 0.05 * k);
      const bool ok = min_over_seeds(s, rate, false) >= bar;
      if (ok && above) {
        c.recommended_rps = rate;
        break;
      }
      above = ok;
    }
  };
  auto evaluate = [&](Candidate& c) {
    c.reason.clear();
    try {
      Scenario s = base.scenario(c);
      if (target) {
        c.attainment = c.attainment_min = run_at(s, knob, plan.target_rps, &runs).attainment;
        if (c.attainment >= bar) c.attainment_min = std::min(c.attainment, min_over_seeds(s, plan.target_rps, true));
        c.status = c.attainment_min >= bar ? Candidate::Status::kPass : Candidate::Status::kFail;
      } else {
        if (c.estimated_rps > 0) knob.apply(s, c.estimated_rps);
        c.goodput = goodput_of(s);
        recommend(c, s);
        c.status = c.recommended_rps > 0 ? Candidate::Status::kPass : Candidate::Status::kFail;
      }
    } catch (const InputError& e) {
      c.status = Candidate::Status::kSkipped;
      c.reason = e.what();
    }
  };
  // Sequential stopping rule: may candidate ord[i] be evaluated, given the
  // results of ord[0..i)? k: how many answers are wanted.
  struct ScanState {
    std::size_t passes = 0;
    std::vector<double> scores;  // measured, maximize objectives
  };
  auto stop_before = [&](const ScanState& st, const std::vector<std::size_t>& ord, std::size_t i, std::size_t k) {
    if (plan.exhaustive) return false;
    if (target) return st.passes >= k;
    if (st.scores.size() >= 4 * k) return true;
    if (st.scores.size() < k) return false;
    std::vector<double> top = st.scores;
    std::sort(top.rbegin(), top.rend());
    return estimated_score(all[ord[i]], plan.objective) / (1 + plan.prune_margin) < top[k - 1];
  };
  // Evaluates ord in waves of `jobs` and scans the results in order; returns
  // the stopping position. Work a wave did past it is undone, so the result
  // does not depend on jobs.
  auto scan = [&](const std::vector<std::size_t>& ord, std::size_t k, const std::string& stage) {
    ScanState st;
    std::size_t cut = ord.size(), scanned = 0;
    StageProgress bar(progress, stage, ord.size(), !plan.exhaustive);
    const std::size_t wave = static_cast<std::size_t>(jobs) * (exchange ? exchange->size() : 1);
    for (std::size_t begin = 0; begin < ord.size() && cut == ord.size(); begin += wave) {
      const std::size_t end = std::min(ord.size(), begin + wave);
      distributed_for(
          exchange, begin, end, jobs,
          [&](std::size_t i) {
            evaluate(all[ord[i]]);
            bar.tick();
          },
          [&](std::size_t i) { return save_candidate(all[ord[i]]); },
          [&](std::size_t i, const std::string& t) { load_candidate(all[ord[i]], t); });
      for (; scanned < end; ++scanned) {
        if (stop_before(st, ord, scanned, k)) {
          cut = scanned;
          break;
        }
        const Candidate& c = all[ord[scanned]];
        if (c.status == Candidate::Status::kPass) ++st.passes;
        if (!target && c.goodput) st.scores.push_back(score_of(c, plan.objective));
      }
    }
    for (std::size_t i = cut; i < ord.size(); ++i) {
      Candidate& c = all[ord[i]];
      c.status = target ? Candidate::Status::kNotEvaluated : Candidate::Status::kPruned;
      c.attainment = c.attainment_min = c.recommended_rps = 0;
      c.goodput.reset();
      c.reason = target ? "" : "dominated: estimate below the finalists' measured goodput";
    }
    for (std::size_t i = 0; i < cut; ++i) {
      const Candidate& c = all[ord[i]];
      if (c.status == Candidate::Status::kPass || c.status == Candidate::Status::kFail) ++result.simulated;
    }
    return cut;
  };
  // Best first: target = cheapest (scan order), maximize = highest score.
  auto rank = [&](std::vector<std::size_t>& v) {
    if (!target)
      std::stable_sort(v.begin(), v.end(), [&](std::size_t a, std::size_t b) {
        return score_of(all[a], plan.objective) > score_of(all[b], plan.objective);
      });
  };
  const std::size_t cut = scan(order, static_cast<std::size_t>(plan.finalists),
                               target ? "verifying candidates at the target" : "goodput of candidates");
  std::vector<std::size_t> passed;
  for (std::size_t i = 0; i < cut; ++i)
    if (all[order[i]].status == Candidate::Status::kPass) passed.push_back(order[i]);
  rank(passed);
  // The best of each mode searched, so the modes can be compared even when
  // one dominates the finalists: scan that mode's remaining candidates.
  for (const bool colocated : {false, true}) {
    if (colocated ? !plan.colocated : !plan.disaggregated) continue;
    std::vector<std::size_t> mine;
    for (std::size_t pos : passed)
      if (all[pos].colocated == colocated) mine.push_back(pos);
    if (mine.empty()) {
      std::vector<std::size_t> rest;
      for (std::size_t i = cut; i < order.size(); ++i)
        if (all[order[i]].colocated == colocated) rest.push_back(order[i]);
      const std::size_t mode_cut = scan(rest, 1, std::string("best ") + (colocated ? "colocated" : "disaggregated"));
      for (std::size_t i = 0; i < mode_cut; ++i)
        if (all[rest[i]].status == Candidate::Status::kPass) mine.push_back(rest[i]);
      rank(mine);
    }
    if (!mine.empty()) result.best_by_mode[colocated ? "colocated" : "disaggregated"] = mine[0];
    for (std::size_t pos : mine)
      if (std::find(passed.begin(), passed.end(), pos) == passed.end()) passed.push_back(pos);
  }
  // Finalists: every pass of both scans, best first (target: in scan order,
  // the mode scans' after the main one's, which is the price order).
  rank(passed);
  result.finalists = passed;
  if (result.finalists.size() > static_cast<std::size_t>(plan.finalists))
    result.finalists.resize(static_cast<std::size_t>(plan.finalists));
  if (!result.finalists.empty()) result.best = result.finalists[0];

  // 4. Goodput of the finalists (target objective), then the rate sweep.
  if (target) {
    std::vector<std::size_t> need = result.finalists;
    for (const auto& [mode, pos] : result.best_by_mode)
      if (std::find(need.begin(), need.end(), pos) == need.end()) need.push_back(pos);
    StageProgress bar(progress, "goodput of finalists", need.size());
    distributed_for(
        exchange, 0, need.size(), jobs,
        [&](std::size_t k) {
          Candidate& c = all[need[k]];
          Scenario s = base.scenario(c);
          knob.apply(s, plan.target_rps);
          c.goodput = goodput_of(s);
          recommend(c, s);
          bar.tick();
        },
        [&](std::size_t k) { return save_candidate(all[need[k]]); },
        [&](std::size_t k, const std::string& t) { load_candidate(all[need[k]], t); });
  }
  const std::size_t swept = std::min<std::size_t>(3, result.finalists.size());
  std::vector<std::pair<std::size_t, double>> tasks;
  for (std::size_t f = 0; f < swept; ++f) {
    const double g = all[result.finalists[f]].goodput->search.goodput_rps;
    if (g > 0)
      for (double fraction : plan.sweep) tasks.emplace_back(f, fraction * g);
  }
  result.sweep.resize(tasks.size());
  {
    StageProgress bar(progress, "attainment vs rate sweep", tasks.size());
    distributed_for(
        exchange, 0, tasks.size(), jobs,
        [&](std::size_t k) {
          const Scenario s = base.scenario(all[result.finalists[tasks[k].first]]);
          result.sweep[k] = {tasks[k].first, run_at(s, knob, tasks[k].second, &runs)};
          bar.tick();
        },
        [&](std::size_t k) {
          const RunPoint& p = result.sweep[k].point;
          return nlohmann::json{p.rate_rps, p.attainment, p.output_tokens_per_s_per_gpu, p.tokens_per_s_per_user,
                                p.ttft_p90_s, p.tpot_p90_s}
              .dump();
        },
        [&](std::size_t k, const std::string& t) {
          const auto j = nlohmann::json::parse(t);
          result.sweep[k] = {tasks[k].first, {j[0], j[1], j[2], j[3], j[4], j[5]}};
        });
  }
  // Pareto frontier (maximize both axes) over sweep points meeting the target.
  std::vector<std::size_t> ok;
  for (std::size_t k = 0; k < result.sweep.size(); ++k)
    if (result.sweep[k].point.attainment >= plan.attainment) ok.push_back(k);
  std::stable_sort(ok.begin(), ok.end(), [&](std::size_t a, std::size_t b) {
    const RunPoint &pa = result.sweep[a].point, &pb = result.sweep[b].point;
    return std::tie(pb.output_tokens_per_s_per_gpu, pb.tokens_per_s_per_user) <
           std::tie(pa.output_tokens_per_s_per_gpu, pa.tokens_per_s_per_user);  // x descending
  });
  double best_y = -1;
  std::vector<std::size_t> frontier;
  for (std::size_t k : ok)
    if (result.sweep[k].point.tokens_per_s_per_user > best_y) {
      best_y = result.sweep[k].point.tokens_per_s_per_user;
      frontier.push_back(k);
    }
  std::reverse(frontier.begin(), frontier.end());  // x ascending
  for (std::size_t k : frontier) {
    result.pareto.push_back(result.sweep[k].point);
    result.pareto_finalist.push_back(result.sweep[k].finalist);
  }

  result.simulations = runs.load();
  if (result.best) {
    const Candidate& c = all[*result.best];
    std::string what;
    if (c.colocated)
      std::snprintf(buf, sizeof buf, "colocated %d x %s tp %d pp %d %s", c.pool.instances, c.pool.gpu.c_str(),
                    c.pool.tp, c.pool.pp, c.pool.policy.c_str());
    else
      std::snprintf(buf, sizeof buf, "prefill %d x %s tp %d pp %d, decode %d x %s tp %d pp %d", c.prefill.instances,
                    c.prefill.gpu.c_str(), c.prefill.tp, c.prefill.pp, c.decode.instances, c.decode.gpu.c_str(),
                    c.decode.tp, c.decode.pp);
    what = buf;
    if (target)
      std::snprintf(buf, sizeof buf, "cheapest configuration meeting the SLO at %g req/s: %s (%s), %d GPUs, $%.2f/h",
                    plan.target_rps, c.name().c_str(), what.c_str(), c.gpus, c.usd_per_hour);
    else
      std::snprintf(buf, sizeof buf, "highest goodput per %s: %s (%s), %d GPUs, $%.2f/h, %.4g req/s (recommended rate)",
                    plan.objective == Objective::kGoodputPerGpu ? "GPU" : "$/h", c.name().c_str(), what.c_str(),
                    c.gpus, c.usd_per_hour, c.recommended_rps);
    result.message = buf;
  } else {
    result.message = target ? "no configuration in the search space meets the SLO at the target rate"
                            : "no configuration in the search space meets the SLO at any rate";
  }
  return result;
}

}  // namespace pdsim
