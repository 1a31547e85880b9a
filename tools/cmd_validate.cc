// pdsim validate: run one scenario with the roofline, profiled (when measured
// tables exist for every pool's device) and real-kernel cost models and
// compare their TTFT/TPOT/TBT percentiles against the real run.
// Writes DIR/validation.json (each model's summary.json object under its name,
// rel_err.<model>.{ttft,tpot,tbt}_{p50,p90,p99} = model / real - 1)
// and DIR/validation.md. --repeat N runs the real model N times (measurements
// carry the machine's noise; the other models are deterministic): "real" is
// then the run with the median TPOT p50, real_repeats holds every run's
// metrics and rel_err_repeats.<model>.<metric> their min / median / max.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <map>
#include <numeric>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "sim/cluster/simulator.h"
#include "sim/config/scenario.h"
#include "sim/core/error.h"
#include "sim/core/output_file.h"
#include "sim/metrics/metrics.h"
#include "sim/metrics/report.h"
#include "tools/commands.h"
#include "pdsim_source_revision.h"  // generated: tools/source_revision.cmake

namespace pdsim::cli {

namespace fs = std::filesystem;

namespace {

struct ValidateOptions {
  ScenarioArgs in;
  RealKernelArgs real;  // for the real run
  std::string out_dir;
  int repeat = 1;
};

// TTFT, TPOT and TBT at p50 / p90 / p99: the table's columns and rel_err's keys.
const char* kMetrics[][3] = {{"ttft_p50", "ttft_s", "p50"}, {"ttft_p90", "ttft_s", "p90"}, {"ttft_p99", "ttft_s", "p99"},
                             {"tpot_p50", "tpot_s", "p50"}, {"tpot_p90", "tpot_s", "p90"}, {"tpot_p99", "tpot_s", "p99"},
                             {"tbt_p50", "tbt_s", "p50"},   {"tbt_p90", "tbt_s", "p90"},   {"tbt_p99", "tbt_s", "p99"}};
// "ttft_p50" -> "TTFT p50"
std::string metric_title(const char* key) {
  std::string k = key;
  const auto u = k.find('_');
  std::string head = k.substr(0, u);
  for (auto& c : head) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return head + " " + k.substr(u + 1);
}

// Per-op view of two representative batches priced by every cost model that
// ran: a prefill of one prompt of the mean input length (in a colocated pool
// with chunked prefill, where prompts longer than a chunk never run whole:
// that prompt's last full chunk, chunk_tokens new tokens after the rest
// cached), and a decode step of the decode pool's mean batch (rounded, >= 1)
// at the mean context (prompt + half the output), each on its pool's GPU and
// parallelism. Shows which ops make a TTFT/TPOT error. The real model
// executes them once more.
constexpr int kBreakdownRealIters = 10;

nlohmann::ordered_json op_breakdown(const std::map<std::string, Scenario>& scenarios, const std::vector<std::string>& ran,
                                    const nlohmann::ordered_json& real_summary) {
  const Scenario& base = scenarios.at("real");
  const bool disagg = base.mode == Mode::kDisaggregated;
  const double in = real_summary["requests"]["input_tokens_mean"].get<double>();
  const double out = real_summary["requests"]["output_tokens_mean"].get<double>();
  const double decode_batch =
      real_summary["pools"][disagg ? "decode" : "colocated"]["mean_batch_requests"].get<double>();
  const std::int64_t prompt = std::max<std::int64_t>(1, std::llround(in));
  const std::int64_t seqs = std::max<std::int64_t>(1, std::llround(decode_batch));
  const std::int64_t context = std::max<std::int64_t>(2, std::llround(in + out / 2));
  const PoolConfig& colocated = base.pool("colocated");
  const std::int64_t chunk = !disagg && colocated.policy == ColocatedPolicy::kChunked
                                 ? std::min(prompt, colocated.chunk_tokens)
                                 : prompt;
  nlohmann::ordered_json j;
  for (const bool decode : {false, true}) {
    BatchStats bs;
    if (decode)
      for (std::int64_t i = 0; i < seqs; ++i) bs.add(SeqShape{1, context - 1});
    else
      bs.add(SeqShape{chunk, prompt - chunk});
    nlohmann::ordered_json phase;
    const char* pool_name = disagg ? (decode ? "decode" : "prefill") : "colocated";
    phase["pool"] = pool_name;
    phase["sequences"] = decode ? seqs : 1;
    if (decode) {
      phase["context_tokens"] = context;
    } else {
      phase["prompt_tokens"] = chunk;  // new tokens
      phase["cached_tokens"] = prompt - chunk;
    }
    nlohmann::ordered_json ops = nlohmann::ordered_json::object(), total = nlohmann::ordered_json::object();
    for (const auto& name : ran) {
      Scenario s = scenarios.at(name);
      // One measured batch, not a run's many: the minimum of at least 10 timed
      // runs, so a burst of host noise (seen on a shared 2-core VM: one op 2x
      // for the whole measurement at 3 runs) does not pass for a model error.
      if (name == "real") s.real_kernel.iters = std::max(s.real_kernel.iters, kBreakdownRealIters);
      const PoolConfig& pool = s.pool(pool_name);
      std::vector<Op> list;
      build_ops(s.model, pool.par, bs, list);
      const auto model = make_cost_model(s, pool);
      const CostBreakdown b = model->batch_breakdown(s.model, pool.par, bs, list);
      for (const auto& po : b.ops) {
        auto& slot = ops[po.op.name];
        slot[name] = (slot.contains(name) ? slot[name].get<double>() : 0.0) + po.price.time_s;
      }
      total[name] = b.total_s;
    }
    phase["ops_s"] = ops;
    phase["total_s"] = total;
    j[decode ? "decode" : "prefill"] = phase;
  }
  return j;
}

// Every batch the real run executed, priced again by each other model on the
// same shape: whether the models agree with the kernels batch by batch, not
// only in the percentiles. A latency tail made of steps the kernels ran far
// slower than any model priced them shows here as outliers; one the
// schedule makes (e.g. the first decode gap, which holds the KV transfer)
// does not, since the same steps are priced alike.
constexpr double kOutlierFactor = 1.5;  // real > 1.5 x every model's price
constexpr int kWorstListed = 5;

std::vector<std::string> modelled(const std::vector<std::string>& ran) {
  std::vector<std::string> models;
  for (const auto& name : ran)
    if (name != "real") models.push_back(name);
  return models;
}

// One pool's batches of a real run, and every model's price for each:
// priced[m][i] is model m's time for batches[i].
struct PricedPool {
  std::vector<const BatchRecord*> batches;
  std::vector<std::vector<double>> priced;
};
PricedPool price_pool(const std::map<std::string, Scenario>& scenarios, const std::vector<std::string>& models,
                      const char* pool_name, const std::vector<BatchRecord>& all) {
  PricedPool p;
  for (const auto& b : all)
    if (std::string(b.pool) == pool_name) p.batches.push_back(&b);
  p.priced.assign(models.size(), std::vector<double>(p.batches.size()));
  std::vector<Op> ops;
  for (std::size_t m = 0; m < models.size() && !p.batches.empty(); ++m) {
    const Scenario& s = scenarios.at(models[m]);
    const PoolConfig& pool = s.pool(pool_name);
    const auto cost = make_cost_model(s, pool);
    for (std::size_t i = 0; i < p.batches.size(); ++i) {
      build_ops(s.model, pool.par, p.batches[i]->stats, ops);
      p.priced[m][i] = cost->batch_time_s(s.model, pool.par, p.batches[i]->stats, ops);
    }
  }
  return p;
}
constexpr const char* kPoolNames[] = {"prefill", "decode", "colocated"};

// Each model's summed price of every batch of one real run, over the run's
// summed measured time, - 1: how fast the kernels ran in that run against
// the models, apart from what the schedule made of it. Told beside each
// run's p50 errors, it separates a host that ran slow (both move) from a
// percentile that moved with the schedule (p50s miss, batches agree).
nlohmann::ordered_json busy_time_error(const std::map<std::string, Scenario>& scenarios,
                                       const std::vector<std::string>& ran, const std::vector<BatchRecord>& batches) {
  const std::vector<std::string> models = modelled(ran);
  std::vector<double> model_s(models.size(), 0.0);
  double real_s = 0;
  for (const char* pool_name : kPoolNames) {
    const PricedPool p = price_pool(scenarios, models, pool_name, batches);
    for (std::size_t i = 0; i < p.batches.size(); ++i) real_s += ns_to_seconds(p.batches[i]->duration);
    for (std::size_t m = 0; m < models.size(); ++m)
      for (const double t : p.priced[m]) model_s[m] += t;
  }
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (std::size_t m = 0; m < models.size(); ++m) out[models[m]] = real_s > 0 ? model_s[m] / real_s - 1 : 0.0;
  return out;
}

nlohmann::ordered_json batch_agreement(const std::map<std::string, Scenario>& scenarios,
                                       const std::vector<std::string>& ran, const std::vector<BatchRecord>& batches) {
  const std::vector<std::string> models = modelled(ran);
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const char* pool_name : kPoolNames) {
    const PricedPool p = price_pool(scenarios, models, pool_name, batches);
    const std::vector<const BatchRecord*>& mine = p.batches;
    if (mine.empty()) continue;
    const std::vector<std::vector<double>>& priced = p.priced;
    std::vector<double> real_s(mine.size());
    double real_total = 0;
    for (std::size_t i = 0; i < mine.size(); ++i) real_total += real_s[i] = ns_to_seconds(mine[i]->duration);
    nlohmann::ordered_json j;
    j["batches"] = mine.size();
    j["real_busy_s"] = real_total;
    // Each model's error percentiles and summed-time error over the batches `which`.
    auto rel_err = [&](const std::vector<std::size_t>& which) {
      double real_sum = 0;
      for (const std::size_t i : which) real_sum += real_s[i];
      nlohmann::ordered_json per_model = nlohmann::ordered_json::object();
      for (std::size_t m = 0; m < models.size(); ++m) {
        std::vector<double> err;
        double total = 0;
        for (const std::size_t i : which) {
          err.push_back(priced[m][i] / real_s[i] - 1);
          total += priced[m][i];
        }
        std::sort(err.begin(), err.end());
        nlohmann::ordered_json e;
        // Literal keys: "p" + std::to_string here draws a false -Wrestrict from g++ 12.
        static constexpr std::pair<const char*, double> kPercentiles[] = {
            {"p1", 1}, {"p10", 10}, {"p50", 50}, {"p90", 90}, {"p99", 99}};
        for (const auto& [key, p] : kPercentiles) e[key] = sorted_percentile(err, p);
        e["total"] = total / real_sum - 1;
        per_model[models[m]] = e;
      }
      return per_model;
    };
    std::vector<std::size_t> all(mine.size());
    std::iota(all.begin(), all.end(), std::size_t{0});
    j["rel_err"] = rel_err(all);
    // The same by kind of batch where a pool runs more than one (colocated:
    // prompts alone, decode steps alone, mixed iterations; "with_prefix":
    // those whose prompts include a chunk after its cached prefix), so a
    // model's error on one kind is not averaged away by the others.
    std::map<std::string, std::vector<std::size_t>> kinds;
    for (std::size_t i = 0; i < mine.size(); ++i) {
      const BatchStats& st = mine[i]->stats;
      kinds[st.prefill_seqs == 0 ? "decode" : st.decode_seqs == 0 ? "prefill" : "mixed"].push_back(i);
      if (st.prefill_kv_tokens > static_cast<double>(st.prefill_tokens)) kinds["with_prefix"].push_back(i);
    }
    if (kinds.size() > 1) {
      nlohmann::ordered_json by_kind = nlohmann::ordered_json::object();
      for (const char* kind : {"prefill", "decode", "mixed", "with_prefix"}) {
        auto it = kinds.find(kind);
        if (it == kinds.end()) continue;
        double busy = 0;
        for (const std::size_t i : it->second) busy += real_s[i];
        by_kind[kind] = {{"batches", it->second.size()}, {"real_busy_s", busy}, {"rel_err", rel_err(it->second)}};
      }
      j["by_kind"] = by_kind;
    }
    // Outliers: batches the kernels ran more than kOutlierFactor x slower than every model priced them.
    std::vector<std::size_t> order(mine.size());
    std::vector<double> slowest_model(mine.size(), 0.0);
    for (std::size_t i = 0; i < mine.size(); ++i) {
      order[i] = i;
      for (std::size_t m = 0; m < models.size(); ++m) slowest_model[i] = std::max(slowest_model[i], priced[m][i]);
    }
    std::int64_t outliers = 0, outlier_tokens = 0, decode_tokens = 0;
    for (std::size_t i = 0; i < mine.size(); ++i) {
      decode_tokens += mine[i]->stats.decode_seqs;
      if (!models.empty() && real_s[i] > kOutlierFactor * slowest_model[i]) {
        ++outliers;
        outlier_tokens += mine[i]->stats.decode_seqs;
      }
    }
    j["outliers"] = {{"factor", kOutlierFactor},
                     {"batches", outliers},
                     {"decode_tokens", outlier_tokens},
                     {"decode_tokens_total", decode_tokens}};
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return real_s[a] / slowest_model[a] > real_s[b] / slowest_model[b];
    });
    nlohmann::ordered_json worst = nlohmann::ordered_json::array();
    for (std::size_t k = 0; k < order.size() && k < static_cast<std::size_t>(kWorstListed) && !models.empty(); ++k) {
      const std::size_t i = order[k];
      const BatchStats& st = mine[i]->stats;
      nlohmann::ordered_json w;
      w["start_s"] = ns_to_seconds(mine[i]->start);
      w["instance"] = mine[i]->instance;
      w["prefill_seqs"] = st.prefill_seqs;
      w["prefill_tokens"] = st.prefill_tokens;
      w["decode_seqs"] = st.decode_seqs;
      w["decode_kv_tokens"] = st.decode_kv_tokens;
      w["real_s"] = real_s[i];
      for (std::size_t m = 0; m < models.size(); ++m) w[models[m] + "_s"] = priced[m][i];
      worst.push_back(w);
    }
    j["worst"] = worst;
    out[pool_name] = j;
  }
  return out;
}

int validate(const ValidateOptions& o, const GlobalOptions& g, const std::string& command) {
  const fs::path out_dir = o.out_dir.empty() ? fs::path("out") / (fs::path(o.in.scenario).stem().string() + "-validate")
                                             : fs::path(o.out_dir);
  for (const char* name : {"validation.json", "validation.md"}) remove_stale_output(out_dir / name);
  create_output_dir(out_dir);
  const LoadOptions load = o.in.load_options(g);
  const Scenario base = load_scenario(o.in.scenario, load);

  nlohmann::ordered_json out;
  out["scenario"] = {{"name", base.name}, {"file", o.in.scenario}, {"model", base.model.name}, {"seed", base.seed}};
  out["command"] = command;
  nlohmann::ordered_json skipped = nlohmann::ordered_json::object();
  std::vector<std::string> ran;
  std::map<std::string, double> wall;
  std::map<std::string, Scenario> scenarios;  // as each model ran
  std::vector<nlohmann::ordered_json> real_runs;  // every real run's summary (--repeat)
  std::vector<std::vector<BatchRecord>> real_batches;  // every real run's batches
  std::size_t real_median = 0;                         // the run that stands for "real"
  const std::vector<RequestSpec> requests = generate_requests(base.workload, base.seed);
  for (const std::string name : {"roofline", "profiled", "real"}) {
    LoadOptions l = load;
    l.overrides.push_back("cost_model=\"" + name + "\"");
    if (name == "real") o.real.add_overrides(l.overrides);
    if (name == "profiled") {
      std::string missing;
      for (const PoolConfig* p : {&base.prefill, &base.decode, &base.colocated})
        if (!p->gpu.name.empty() && !fs::exists(g.data_dir + "/profiles/measured/" + p->gpu.name + "/gemm_bf16.csv"))
          missing = p->gpu.name;
      if (!missing.empty()) {
        skipped[name] = "no measured tables for device \"" + missing + "\" (profiles/measured/" + missing + "/)";
        continue;
      }
    }
    const Scenario s = load_scenario(o.in.scenario, l);
    const int runs = name == "real" ? o.repeat : 1;
    for (int run = 0; run < runs; ++run) {
      const auto t0 = std::chrono::steady_clock::now();
      SimOptions sim_options;
      if (name == "real") {
        real_batches.emplace_back();
        sim_options.on_batch = [&batches = real_batches.back()](const BatchRecord& b) { batches.push_back(b); };
      }
      if (isatty(STDERR_FILENO))
        sim_options.progress = [&name, run, runs](double done) {
          std::fprintf(stderr, "\rvalidate: %-8s run %d of %d, %5.1f%% of requests done", name.c_str(), run + 1, runs,
                       100 * done);
        };
      const SimResult r = simulate(s, requests, sim_options);
      if (sim_options.progress) std::fprintf(stderr, "\r%70s\r", "");
      wall[name] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (name == "real")
        real_runs.push_back(make_summary(s, r));
      else
        out[name] = make_summary(s, r);
    }
    if (name == "real") {
      // The run with the median TPOT p50 (the metric this noise moves most) stands for real.
      std::vector<std::size_t> order(real_runs.size());
      for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return real_runs[a]["tpot_s"]["p50"].get<double>() < real_runs[b]["tpot_s"]["p50"].get<double>();
      });
      real_median = order[(order.size() - 1) / 2];
      out[name] = real_runs[real_median];
    }
    ran.push_back(name);
    scenarios.emplace(name, s);
  }
  out["skipped"] = skipped;
  // The backend the real run used, from its summary.
  const auto& rk = out["real"]["real_kernel"];
  out["real_backend"] = {{"name", rk["backend"]}, {"device", rk["device"]}};
  const std::string backend_device = rk["backend"].get<std::string>() + ": " + rk["device"].get<std::string>();
  const std::string layers_run = rk.value("layers_run", std::string());
  // model / real - 1 for every metric (0 where real is 0), against one real run's summary.
  auto errors_vs = [&](const std::string& name, const nlohmann::ordered_json& real) {
    nlohmann::ordered_json e;
    for (const auto& m : kMetrics) {
      const double r = real[m[1]][m[2]].get<double>();
      e[m[0]] = r > 0 ? out[name][m[1]][m[2]].get<double>() / r - 1 : 0.0;
    }
    return e;
  };
  nlohmann::ordered_json rel = nlohmann::ordered_json::object();
  std::map<std::string, std::vector<nlohmann::ordered_json>> run_errors;  // model -> its errors against each real run
  for (const auto& name : ran) {
    if (name == "real") continue;
    rel[name] = errors_vs(name, out["real"]);
    for (const auto& r : real_runs) run_errors[name].push_back(errors_vs(name, r));
  }
  out["rel_err"] = rel;
  // Every real run, and each model's error against each of them.
  nlohmann::ordered_json repeats = nlohmann::ordered_json::array(), spread = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < real_runs.size(); ++i) {
    nlohmann::ordered_json m;
    for (const auto& k : kMetrics) m[k[0]] = real_runs[i][k[1]][k[2]];
    m["busy_time_rel_err"] = busy_time_error(scenarios, ran, real_batches[i]);
    repeats.push_back(m);
  }
  for (const auto& [name, per_run] : run_errors) {
    for (const auto& m : kMetrics) {
      std::vector<double> e;
      for (const auto& errs : per_run) e.push_back(errs[m[0]].get<double>());
      std::sort(e.begin(), e.end());
      spread[name][m[0]] = {{"min", e.front()}, {"median", sorted_percentile(e, 50)}, {"max", e.back()}};
    }
  }
  out["real_repeats"] = repeats;
  out["rel_err_repeats"] = spread;
  out["wall_s"] = wall;
  out["op_breakdown"] = op_breakdown(scenarios, ran, out["real"]);
  out["batch_agreement"] = batch_agreement(scenarios, ran, real_batches[real_median]);

  out["pdsim_source"] = PDSIM_SOURCE_REVISION;  // the kernels the real run executed
  write_file_atomically(out_dir / "validation.json", out.dump(2) + "\n");
  std::ostringstream md;
  md << std::fixed;
  md << "# Validation: " << base.name << "\n\n";
  md << "Command: `" << command << "` (pdsim source " << PDSIM_SOURCE_REVISION << ")\n\n";
  const std::time_t t = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  md << "Date: " << date << ". Model " << base.model.name << ", " << base.total_gpus()
     << " devices; the real run executes every batch on the kernel backend (" << backend_device
     << (layers_run == "all"    ? "; all " + std::to_string(base.model.layers) + " layers run in turn, each op timed"
         : layers_run == "one"   ? "; one layer timed op by op, x " + std::to_string(base.model.layers) + " layers"
         : layers_run == "mixed" ? "; one layer or all layers, by TP degree"
                                 : "; times replayed from a timings file")
     << ", + LM head), so its numbers carry this machine's timing noise.\n\n";
  md << "| cost model";
  for (const auto& m : kMetrics) md << " | " << metric_title(m[0]) << " (ms)";
  md << " | wall (s) |\n|---";
  for (std::size_t i = 0; i <= std::size(kMetrics); ++i) md << "|---";
  md << "|\n";
  for (const auto& name : ran) {
    md << "| " << name;
    for (const auto& m : kMetrics) md << " | " << std::setprecision(3) << 1e3 * out[name][m[1]][m[2]].get<double>();
    md << " | " << std::setprecision(2) << wall[name] << " |\n";
  }
  md << "\nSigned relative error vs real (model / real - 1):\n\n| cost model";
  for (const auto& m : kMetrics) md << " | " << metric_title(m[0]);
  md << " |\n|---";
  for (std::size_t i = 0; i < std::size(kMetrics); ++i) md << "|---";
  md << "|\n";
  for (const auto& name : ran) {
    if (name == "real") continue;
    md << "| " << name;
    for (const auto& m : kMetrics) md << " | " << std::showpos << std::setprecision(1) << 100 * rel[name][m[0]].get<double>() << "%" << std::noshowpos;
    md << " |\n";
  }
  // The TBT p99 tail: its share that is requests' first gaps (KV transfer + join), per run.
  md << "\nTBT p99 tail (the top 1% of gaps, about " << out["real"]["tbt_s"]["count"].get<std::uint64_t>() / 100
     << " samples): first gaps (a request's first to second token: KV transfer, join, one step) at or above each run's "
        "own TBT p99:";
  for (const auto& name : ran)
    md << (name == ran.front() ? " " : ", ") << name << " "
       << out[name]["first_tbt_s"]["at_or_above_tbt_p99"].get<std::int64_t>();
  md << "; the rest of each tail is decode steps.\n";
  if (real_runs.size() > 1) {
    md << "\nReal run repeated " << real_runs.size()
       << " times (the table above holds the run with the median TPOT p50); each model's p50 error against each run, "
          "and its error on that run's busy time (every batch the run executed, priced by the model: summed price / "
          "summed measured time - 1; where the p50s miss and the busy time agrees, the schedule moved a percentile, "
          "not the kernels' speed):\n\n"
          "| run | real TTFT p50 (ms) | real TPOT p50 (ms)";
    for (const auto& name : ran)
      if (name != "real") md << " | " << name << " TTFT p50 | " << name << " TPOT p50 | " << name << " busy time";
    md << " |\n|---|---|---";
    for (std::size_t i = 0; i + 1 < ran.size(); ++i) md << "|---|---|---";
    md << "|\n";
    for (std::size_t i = 0; i < real_runs.size(); ++i) {
      const auto& r = real_runs[i];
      md << "| " << i + 1 << " | " << std::setprecision(3) << 1e3 * r["ttft_s"]["p50"].get<double>() << " | "
         << 1e3 * r["tpot_s"]["p50"].get<double>();
      for (const auto& name : ran) {
        if (name == "real") continue;
        for (const char* k : {"ttft_p50", "tpot_p50"})
          md << " | " << std::showpos << std::setprecision(1) << 100 * run_errors[name][i][k].get<double>() << "%"
             << std::noshowpos;
        md << " | " << std::showpos << std::setprecision(1)
           << 100 * repeats[i]["busy_time_rel_err"][name].get<double>() << "%" << std::noshowpos;
      }
      md << " |\n";
    }
    md << "\n";
    for (const auto& name : ran) {
      if (name == "real") continue;
      int within = 0;
      for (const auto& errs : run_errors[name])
        within += std::abs(errs["ttft_p50"].get<double>()) <= 0.10 && std::abs(errs["tpot_p50"].get<double>()) <= 0.10;
      md << name << ": p50 TTFT and TPOT both within 10% of the real run in " << within << " of " << real_runs.size()
         << " runs.\n";
    }
  }
  for (const char* phase : {"prefill", "decode"}) {
    const auto& ph = out["op_breakdown"][phase];
    md << "\nPer op, one " << phase << " batch (";
    if (std::string(phase) == "prefill")
      md << "1 prompt of " << ph["prompt_tokens"].get<std::int64_t>() << " tokens"
         << (ph["cached_tokens"].get<std::int64_t>() > 0
                 ? " after " + std::to_string(ph["cached_tokens"].get<std::int64_t>()) + " cached (a chunk)"
                 : std::string());
    else
      md << ph["sequences"].get<std::int64_t>() << " x " << ph["context_tokens"].get<std::int64_t>()
         << " context tokens";
    md << ", " << ph["pool"].get<std::string>() << " pool; all layers; ms; real: minimum of at least "
       << kBreakdownRealIters << " timed runs; model / real - 1):\n\n| op";
    for (const auto& name : ran) md << " | " << name;
    for (const auto& name : ran)
      if (name != "real") md << " | " << name << " vs real";
    md << " |\n|---";
    for (std::size_t i = 0; i < 2 * ran.size() - 1; ++i) md << "|---";
    md << "|\n";
    auto row = [&](const std::string& label, const nlohmann::ordered_json& v) {
      md << "| " << label;
      for (const auto& name : ran) md << " | " << std::setprecision(3) << 1e3 * v.value(name, 0.0);
      const double real = v.value("real", 0.0);
      for (const auto& name : ran)
        if (name != "real") {
          md << " | ";
          if (real > 0)
            md << std::showpos << std::setprecision(1) << 100 * (v.value(name, 0.0) / real - 1) << "%" << std::noshowpos;
          else
            md << "-";
        }
      md << " |\n";
    };
    for (const auto& [op, v] : ph["ops_s"].items()) row(op, v);
    row("**total**", ph["total_s"]);
  }
  const auto& agree = out["batch_agreement"];
  if (ran.size() > 1 && !agree.empty()) {
    md << "\nPer batch: every batch of the real run above, priced again by each model on the same shape (model / real - 1; "
          "percentiles over batches; total: summed times):\n\n"
          "| pool | batches | cost model | p1 | p10 | p50 | p90 | p99 | total |\n|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& [pool, a] : agree.items())
      for (const auto& [name, e] : a["rel_err"].items()) {
        md << "| " << pool << " | " << a["batches"].get<std::int64_t>() << " | " << name;
        for (const char* k : {"p1", "p10", "p50", "p90", "p99", "total"})
          md << " | " << std::showpos << std::setprecision(1) << 100 * e[k].get<double>() << "%" << std::noshowpos;
        md << " |\n";
      }
    for (const auto& [pool, a] : agree.items()) {
      if (!a.contains("by_kind")) continue;
      md << "\n" << pool << " by kind of batch (prefill: prompts alone; decode: decode steps alone; mixed: both in "
         << "one iteration; with_prefix: any of these holding a prompt chunk after its cached prefix):\n\n"
         << "| kind | batches | real busy (s) | cost model | p10 | p50 | p90 | total |\n|---|---|---|---|---|---|---|---|\n";
      for (const auto& [kind, k] : a["by_kind"].items())
        for (const auto& [name, e] : k["rel_err"].items()) {
          md << "| " << kind << " | " << k["batches"].get<std::int64_t>() << " | " << std::setprecision(3)
             << k["real_busy_s"].get<double>() << " | " << name;
          for (const char* q : {"p10", "p50", "p90", "total"})
            md << " | " << std::showpos << std::setprecision(1) << 100 * e[q].get<double>() << "%" << std::noshowpos;
          md << " |\n";
        }
    }
    for (const auto& [pool, a] : agree.items()) {
      const auto& ol = a["outliers"];
      md << "\n" << pool << ": " << ol["batches"].get<std::int64_t>() << " of " << a["batches"].get<std::int64_t>()
         << " batches ran over " << std::setprecision(1) << ol["factor"].get<double>() << "x every model's price";
      if (ol["decode_tokens_total"].get<std::int64_t>() > 0)
        md << "; they emitted " << ol["decode_tokens"].get<std::int64_t>() << " of "
           << ol["decode_tokens_total"].get<std::int64_t>() << " decode tokens (" << std::setprecision(2)
           << 100.0 * ol["decode_tokens"].get<double>() / ol["decode_tokens_total"].get<double>()
           << "%; each is one TBT sample, so above 1% they alone set TBT p99)";
      md << ". The " << a["worst"].size() << " batches furthest over every model's price:\n\n"
         << "| start (s) | instance | prefill seqs | prefill tokens | decode seqs | decode KV tokens | real (ms)";
      for (const auto& name : ran)
        if (name != "real") md << " | " << name << " (ms)";
      md << " |\n|---|---|---|---|---|---|---";
      for (std::size_t i = 0; i + 1 < ran.size(); ++i) md << "|---";
      md << "|\n";
      for (const auto& w : a["worst"]) {
        md << "| " << std::setprecision(4) << w["start_s"].get<double>() << " | " << w["instance"].get<int>() << " | "
           << w["prefill_seqs"].get<std::int64_t>() << " | " << w["prefill_tokens"].get<std::int64_t>() << " | "
           << w["decode_seqs"].get<std::int64_t>() << " | " << std::setprecision(0)
           << w["decode_kv_tokens"].get<double>() << " | " << std::setprecision(3) << 1e3 * w["real_s"].get<double>();
        for (const auto& name : ran)
          if (name != "real") md << " | " << 1e3 * w[name + "_s"].get<double>();
        md << " |\n";
      }
    }
  }
  for (auto& [k, v] : skipped.items()) md << "\n" << k << " skipped: " << v.get<std::string>() << "\n";
  write_file_atomically(out_dir / "validation.md", md.str());
  std::cout << md.str() << "\nresults: " << (out_dir / "validation.json").string() << ", "
            << (out_dir / "validation.md").string() << "\n";
  return 0;
}

}  // namespace

Command add_validate_command(CLI::App& app, const GlobalOptions& global) {
  auto o = std::make_shared<ValidateOptions>();
  o->in.add_to(app);
  app.add_option("--out", o->out_dir, "output directory (default: out/<scenario name>-validate)");
  o->real.add_to(app);
  app.add_option("--repeat", o->repeat, "run the real model N times and report the spread (default 1)")
      ->check(CLI::PositiveNumber);
  return [o, &global] {
    std::string cmd = "pdsim validate " + o->in.scenario;
    if (!o->out_dir.empty()) cmd += " --out " + o->out_dir;
    if (o->in.seed >= 0) cmd += " --seed " + std::to_string(o->in.seed);
    for (const auto& s : o->in.overrides) cmd += " --set " + s;
    if (o->real.memo) cmd += " --memo";
    if (!o->real.timings.empty()) cmd += " --timings " + o->real.timings;
    if (o->repeat > 1) cmd += " --repeat " + std::to_string(o->repeat);
    if (o->repeat > 1 && !o->real.timings.empty())
      throw InputError("--repeat", "repeats measure again, but a timings file replays: use one or the other");
    return validate(*o, global, cmd);
  };
}

}  // namespace pdsim::cli
