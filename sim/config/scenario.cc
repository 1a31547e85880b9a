#include "sim/config/scenario.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "sim/config/json_object.h"
#include "sim/core/error.h"
#include "sim/cost/factory.h"

#ifndef PDSIM_DATA_DIR
#define PDSIM_DATA_DIR "."
#endif

namespace pdsim {

namespace fs = std::filesystem;

std::string default_data_dir() {
  if (const char* env = std::getenv("PDSIM_DATA_DIR"); env && *env) return env;
  return PDSIM_DATA_DIR;
}

namespace {

std::string fmt(double v, int digits = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string resolve_relative(const std::string& file, const std::string& path) {
  if (fs::path(path).is_absolute()) return path;
  return (fs::path(file).parent_path() / path).lexically_normal().string();
}

LengthDist parse_length(JsonObject obj) {
  LengthDist d;
  const std::string kind = obj.choice("dist", {"fixed", "uniform", "normal", "lognormal", "empirical"});
  auto clip = [&](bool required) {
    if (required || obj.has("min")) d.min = obj.positive_integer("min");
    if (required || obj.has("max")) d.max = obj.positive_integer("max");
    if (d.max > INT32_MAX) obj.fail("max", "must be <= 2147483647");
    if (d.min > d.max) obj.fail("max", "must be >= min (" + std::to_string(d.min) + ")");
  };
  // A mean outside the clip range would clip (nearly) every sample to one bound: a typo, not a workload.
  auto mean_within_clip = [&] {
    if (d.mean < static_cast<double>(d.min))
      obj.fail("mean", "mean " + fmt(d.mean, 3) + " is below min " + std::to_string(d.min));
    if (d.mean > static_cast<double>(d.max))
      obj.fail("mean", "mean " + fmt(d.mean, 1) + " is above max " + std::to_string(d.max));
  };
  if (kind == "fixed") {
    d.kind = LengthDist::Kind::kFixed;
    const std::int64_t v = obj.positive_integer("value");
    if (v > INT32_MAX) obj.fail("value", "too large");
    d.value = static_cast<double>(v);
    d.min = d.max = v;
  } else if (kind == "uniform") {
    d.kind = LengthDist::Kind::kUniform;
    clip(true);
  } else if (kind == "normal") {
    d.kind = LengthDist::Kind::kNormal;
    d.mean = obj.positive("mean");
    d.stddev = obj.number("std");
    if (d.stddev < 0) obj.fail("std", "must be >= 0");
    clip(false);
    mean_within_clip();
  } else if (kind == "lognormal") {
    d.kind = LengthDist::Kind::kLognormal;
    d.mean = obj.positive("mean");
    d.cv = obj.number_in("cv", 1e-3, 100);
    clip(false);
    mean_within_clip();
  } else {
    d.kind = LengthDist::Kind::kEmpirical;
    JsonObject t = obj.object("trace");
    const std::string path = resolve_relative(obj.file(), t.string("path"));
    if (!std::ifstream(path)) t.fail("path", "cannot open trace file " + path);
    const std::string format = t.choice("format", {"azure_csv", "mooncake_jsonl"});
    const std::string column = obj.choice("column", {"input", "output"});
    t.finish();
    const auto rows = read_trace(path, format == "azure_csv" ? TraceFormat::kAzureCsv : TraceFormat::kMooncakeJsonl);
    for (const auto& r : rows) d.samples.push_back(column == "input" ? r.input_tokens : r.output_tokens);
    d.min = *std::min_element(d.samples.begin(), d.samples.end());
    d.max = *std::max_element(d.samples.begin(), d.samples.end());
  }
  obj.finish();
  return d;
}

WorkloadConfig parse_workload(JsonObject w) {
  WorkloadConfig c;
  if (w.has("trace")) {
    JsonObject t = w.object("trace");
    TraceConfig tc;
    tc.path = resolve_relative(w.file(), t.string("path"));
    if (!std::ifstream(tc.path)) t.fail("path", "cannot open trace file " + tc.path);
    tc.format = t.choice("format", {"azure_csv", "mooncake_jsonl"}) == "azure_csv" ? TraceFormat::kAzureCsv
                                                                                     : TraceFormat::kMooncakeJsonl;
    tc.time_scale = t.positive("time_scale", 1.0);
    t.finish();
    c.trace = tc;
    c.num_requests = w.integer("num_requests", 0);  // 0 = whole trace
    if (c.num_requests < 0) w.fail("num_requests", "must be >= 0 (0 = the whole trace)");
    if (w.has("arrival")) w.fail("arrival", "a trace brings its own arrival times; remove \"arrival\" or \"trace\"");
    if (w.has("input_tokens") || w.has("output_tokens"))
      w.fail("trace", "a trace brings its own lengths; remove \"input_tokens\"/\"output_tokens\"");
    w.finish();
    return c;
  }
  JsonObject a = w.object("arrival");
  ArrivalConfig ac;
  const std::string process = a.choice("process", {"poisson", "gamma", "constant", "closed_loop"});
  if (process == "closed_loop") {
    ac.process = ArrivalConfig::Process::kClosedLoop;
    const std::int64_t conc = a.positive_integer("concurrency");
    if (conc > 1'000'000) a.fail("concurrency", "must be <= 1000000");
    ac.concurrency = static_cast<int>(conc);
  } else {
    ac.process = process == "poisson" ? ArrivalConfig::Process::kPoisson
                 : process == "gamma" ? ArrivalConfig::Process::kGamma
                                      : ArrivalConfig::Process::kConstant;
    ac.rate_rps = a.positive("rate_rps");
    if (ac.process == ArrivalConfig::Process::kGamma) ac.cv = a.number_in("cv", 1e-3, 100);
  }
  a.finish();
  c.arrival = ac;
  c.num_requests = w.positive_integer("num_requests");
  if (c.num_requests > 100'000'000) w.fail("num_requests", "must be <= 100000000");
  // Simulated time is int64 nanoseconds (~292 years); keep open-loop arrivals far inside it.
  if (ac.rate_rps > 0 && static_cast<double>(c.num_requests) / ac.rate_rps > kMaxArrivalSpanS)
    w.fail("arrival", "num_requests / rate_rps spans more than 1e8 s of simulated time; raise rate_rps");
  c.input = parse_length(w.object("input_tokens"));
  c.output = parse_length(w.object("output_tokens"));
  w.finish();
  return c;
}

RouterKind parse_router(JsonObject& obj, RouterKind fallback) {
  if (!obj.has("router")) return fallback;
  return obj.choice("router", {"round_robin", "least_loaded"}) == "round_robin" ? RouterKind::kRoundRobin
                                                                                 : RouterKind::kLeastLoaded;
}

PoolConfig parse_pool(JsonObject p, GpuCatalog& gpus, const ModelSpec& model, const std::string& role,
                      RouterKind default_router) {
  PoolConfig c;
  c.json_path = p.path();
  c.router = parse_router(p, default_router);
  c.gpu = gpus.get(p.string("gpu"), p.file() + ": " + p.key_path("gpu"));
  c.instances = static_cast<int>(p.integer_in("instances", 1, 100000, 1));
  c.par.tp = static_cast<int>(p.integer_in("tp", 1, 1024, 1));
  c.par.pp = static_cast<int>(p.integer_in("pp", 1, 1024, 1));
  if (model.heads % c.par.tp != 0)
    p.fail("tp", "must divide the model's " + std::to_string(model.heads) + " attention heads, got " +
                     std::to_string(c.par.tp));
  // KV heads are split over TP ranks or replicated on them, never split unevenly (as vLLM requires).
  if (model.kv_heads % c.par.tp != 0 && c.par.tp % model.kv_heads != 0)
    p.fail("tp", "must divide the model's " + std::to_string(model.kv_heads) + " KV heads or be a multiple of it, got " +
                     std::to_string(c.par.tp));
  if (c.par.pp > model.layers)
    p.fail("pp", "exceeds the model's " + std::to_string(model.layers) + " layers");
  if (role != "decode") {
    c.max_batch_tokens = p.positive_integer("max_batch_tokens", 8192);
    c.max_batch_requests = p.positive_integer("max_batch_requests", 256);
  }
  if (role != "prefill") c.max_batch_size = p.positive_integer("max_batch_size", 256);
  c.memory_utilization = p.positive("memory_utilization", 0.9);
  if (c.memory_utilization > 1) p.fail("memory_utilization", "is a fraction and must be <= 1");
  c.block_tokens = p.integer_in("block_tokens", 1, 65536, 16);
  if (role == "colocated") {
    c.policy = p.choice("policy", {"prefill_priority", "chunked"}, "prefill_priority") == "chunked"
                   ? ColocatedPolicy::kChunked
                   : ColocatedPolicy::kPrefillPriority;
    if (c.policy == ColocatedPolicy::kChunked) c.chunk_tokens = p.positive_integer("chunk_tokens", 512);
  }
  p.finish();
  kv_capacity_tokens(model, c, p.file());  // fails early when the model does not fit
  return c;
}

}  // namespace

std::int64_t kv_capacity_tokens(const ModelSpec& model, const PoolConfig& pool, const std::string& file) {
  const double usable = pool.gpu.memory_bytes() * pool.memory_utilization;
  const double weights = weight_bytes_per_gpu(model, pool.par);
  const double gib = 1073741824.0;
  if (weights >= usable) {
    throw InputError(file + ": " + pool.json_path,
                     model.name + " does not fit: " + fmt(weights / gib) + " GiB of weights per GPU (tp=" +
                         std::to_string(pool.par.tp) + ", pp=" + std::to_string(pool.par.pp) + ") but " +
                         pool.gpu.name + " offers " + fmt(usable / gib) + " GiB (" + fmt(pool.memory_utilization, 2) +
                         " x " + fmt(pool.gpu.memory_gib) + " GiB); short by " + fmt((weights - usable) / gib) +
                         " GiB; raise tp or pp");
  }
  const double per_token = kv_bytes_per_token_per_gpu(model, pool.par);
  const auto tokens = static_cast<std::int64_t>((usable - weights) / per_token);
  return tokens / pool.block_tokens * pool.block_tokens;  // whole blocks only
}

Scenario parse_scenario(nlohmann::json doc, const std::string& file, const LoadOptions& options) {
  for (const auto& o : options.overrides) apply_override(doc, o, file);
  Scenario s;
  s.file = file;
  JsonObject top(doc, file);
  s.name = top.string("name", fs::path(file).stem().string());
  s.seed = static_cast<std::uint64_t>(top.integer("seed", 1));
  if (top.integer("seed", 1) < 0) top.fail("seed", "must be >= 0");
  if (options.seed_override >= 0) s.seed = static_cast<std::uint64_t>(options.seed_override);

  ModelCatalog catalog;
  catalog.load_file(options.data_dir + "/profiles/models.json");
  if (top.has("catalog")) catalog.load_file(resolve_relative(file, top.string("catalog")));
  const nlohmann::json& model_json = top.raw("model");
  if (model_json.is_string()) {
    s.model = catalog.get(model_json.get<std::string>(), file + ": $.model");
  } else if (model_json.is_object()) {
    JsonObject m = top.object("model");
    const std::string name = m.string("name");
    s.model = parse_model(m, name);
  } else {
    top.fail("model", "expected a catalog name or an inline model object");
  }

  s.workload = parse_workload(top.object("workload"));

  GpuCatalog gpus(options.data_dir + "/profiles/gpus");
  JsonObject cluster = top.object("cluster");
  const std::string mode = cluster.choice("mode", {"disaggregated", "colocated"});
  s.router = parse_router(cluster, RouterKind::kRoundRobin);
  if (mode == "disaggregated") {
    s.mode = Mode::kDisaggregated;
    s.prefill = parse_pool(cluster.object("prefill"), gpus, s.model, "prefill", s.router);
    s.decode = parse_pool(cluster.object("decode"), gpus, s.model, "decode", s.router);
    if (cluster.has("colocated")) cluster.fail("colocated", "only used when mode is \"colocated\"");
    JsonObject kv = cluster.object("kv_transfer");
    s.kv_transfer.bandwidth_gbps = kv.number_in("bandwidth_gbps", 1e-3, 1e6);  // 1 Mb/s .. 1 Pb/s
    s.kv_transfer.latency_us = kv.number_in("latency_us", 0, 1e9, 5.0);        // up to 1000 s
    s.kv_transfer.layerwise = kv.boolean("layerwise", false);
    kv.finish();
  } else {
    s.mode = Mode::kColocated;
    s.colocated = parse_pool(cluster.object("colocated"), gpus, s.model, "colocated", s.router);
    for (const char* key : {"prefill", "decode", "kv_transfer"})
      if (cluster.has(key)) cluster.fail(key, "only used when mode is \"disaggregated\"");
  }
  cluster.finish();

  s.cost_model = top.choice("cost_model", cost_model_names(), "roofline");
  if (top.has("real_kernel")) {
    JsonObject rk = top.object("real_kernel");
    s.real_kernel.backend = rk.choice("backend", {"auto", "cpu", "cuda"}, "auto");
    s.real_kernel.memo = rk.boolean("memo", false);
    s.real_kernel.warmup_iters = static_cast<int>(rk.integer_in("warmup_iters", 0, 1000, 1));
    s.real_kernel.iters = static_cast<int>(rk.integer_in("iters", 1, 1000, 1));
    s.real_kernel.layers = rk.choice("layers", {"one", "all", "auto"}, "one");
    s.real_kernel.threads = static_cast<int>(rk.integer_in("threads", 0, 4096, 0));  // 0 = all cores
    const std::string timings = rk.string("timings_file", "");
    if (!timings.empty()) s.real_kernel.timings_file = resolve_relative(file, timings);
    rk.finish();
  }
  s.data_dir = options.data_dir;
  if (top.has("slo")) {
    JsonObject slo = top.object("slo");
    s.slo.ttft_s = slo.positive("ttft_s");
    s.slo.tpot_s = slo.positive("tpot_s");
    s.slo.ttft_percentile = slo.positive("ttft_percentile", 90);
    s.slo.tpot_percentile = slo.positive("tpot_percentile", 90);
    for (const char* key : {"ttft_percentile", "tpot_percentile"})
      if ((key[0] == 't' && key[1] == 't' ? s.slo.ttft_percentile : s.slo.tpot_percentile) > 100)
        slo.fail(key, "must be in (0, 100]");
    slo.finish();
  } else {
    top.fail("slo", "missing required key (give ttft_s and tpot_s)");
  }
  top.finish();
  s.resolved = std::move(doc);
  return s;
}

Scenario load_scenario(const std::string& path, const LoadOptions& options) {
  return parse_scenario(parse_json_file(path), path, options);
}

}  // namespace pdsim
