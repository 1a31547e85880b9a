// Speed and memory of the simulator (Google Benchmark).
//
//   BM_GenerateRequests/N        request generation alone (excluded from the
//                                simulate timings below)
//   BM_SimulateDisaggregated/N   simulate() of N requests: llama-3.1-8b, 4 prefill
//                                + 4 decode H100 (tp 1), Poisson 140 req/s (~80%
//                                busy prefill pool, the bottleneck), input lognormal
//                                mean 1024 cv 0.5 [16, 8192], output 128,
//                                max_batch_size 128, round robin
//   BM_CostModelDecodeStep       build_ops + RooflineCostModel::total_s for one
//                                decode iteration of 128 sequences
//   BM_BatchPricerDecodeStep     the same price through BatchPricer, as the engine
//                                computes it (the recurring ops' prices kept)
//
// Counters: requests_per_s (per wall-second, UseRealTime), events (simulated
// events per run), peak_rss_MB (VmHWM of /proc/self/status; the high-water mark
// is reset through /proc/self/clear_refs at the start of each benchmark, so it
// covers that benchmark's requests + simulation plus the process's baseline).
//
// Targets (results/bench-sim.md): 1M requests in < 30 s on one core, < 2 GB RSS.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/cluster/simulator.h"
#include "sim/config/scenario.h"
#include "sim/cost/batch_pricer.h"
#include "sim/cost/cost_model.h"
#include "sim/model/ops.h"
#include "sim/workload/workload.h"

namespace {

using pdsim::Scenario;

// 140 req/s: prefill pool utilization 0.796 at 100k requests (pdsim run,
// summary.json utilization.prefill; 130 -> 0.743, 145 -> 0.822, saturation
// ~185 req/s). The decode pool's busy fraction is ~1.0 at any rate >= 10 req/s
// (continuous batching keeps it busy whenever a request runs), so it is not the
// bottleneck measure; its mean batch is ~41 of 128 at this rate.
constexpr double kRateRps = 140.0;

Scenario bench_scenario(std::int64_t num_requests) {
  nlohmann::json doc = {
      {"name", "bench-disagg-4p4d"},
      {"seed", 1},
      {"model", "llama-3.1-8b"},
      {"workload",
       {{"arrival", {{"process", "poisson"}, {"rate_rps", kRateRps}}},
        {"num_requests", num_requests},
        {"input_tokens", {{"dist", "lognormal"}, {"mean", 1024}, {"cv", 0.5}, {"min", 16}, {"max", 8192}}},
        {"output_tokens", {{"dist", "fixed"}, {"value", 128}}}}},
      {"cluster",
       {{"mode", "disaggregated"},
        {"prefill",
         {{"gpu", "h100-sxm"}, {"instances", 4}, {"tp", 1}, {"max_batch_tokens", 8192}, {"max_batch_requests", 16}}},
        {"decode", {{"gpu", "h100-sxm"}, {"instances", 4}, {"tp", 1}, {"max_batch_size", 128}}},
        {"kv_transfer", {{"bandwidth_gbps", 400}, {"latency_us", 5}, {"layerwise", false}}},
        {"router", "round_robin"}}},
      {"cost_model", "roofline"},
      {"slo", {{"ttft_s", 0.4}, {"ttft_percentile", 90}, {"tpot_s", 0.04}, {"tpot_percentile", 90}}},
  };
  pdsim::LoadOptions load;
  load.data_dir = pdsim::default_data_dir();
  return pdsim::parse_scenario(std::move(doc), "<bench>", load);
}

// Resets VmHWM to the current RSS (Linux >= 4.0). Returns false if not allowed.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

double peak_rss_mb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // kB -> MiB
  }
  return 0;
}

void set_rss_counters(benchmark::State& state, bool reset_ok) {
  state.counters["peak_rss_MB"] = peak_rss_mb();
  if (!reset_ok) state.counters["rss_reset_failed"] = 1;  // then peak_rss_MB is the process-lifetime peak
}

void BM_GenerateRequests(benchmark::State& state) {
  const bool reset_ok = reset_peak_rss();
  const Scenario scenario = bench_scenario(state.range(0));
  for (auto _ : state) {
    auto requests = pdsim::generate_requests(scenario.workload, scenario.seed);
    benchmark::DoNotOptimize(requests.data());
  }
  state.counters["requests_per_s"] =
      benchmark::Counter(static_cast<double>(state.range(0)) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
  set_rss_counters(state, reset_ok);
}
BENCHMARK(BM_GenerateRequests)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond)->UseRealTime();

// Request generation happens before the timed loop and is not timed.
void BM_SimulateDisaggregated(benchmark::State& state) {
  const bool reset_ok = reset_peak_rss();
  const Scenario scenario = bench_scenario(state.range(0));
  const std::vector<pdsim::RequestSpec> requests = pdsim::generate_requests(scenario.workload, scenario.seed);
  std::uint64_t events = 0;
  double sim_end_s = 0;
  for (auto _ : state) {
    const pdsim::SimResult result = pdsim::simulate(scenario, requests);
    events = result.events;
    sim_end_s = pdsim::ns_to_seconds(result.end_time);
    benchmark::DoNotOptimize(result.records.data());
  }
  const double n = static_cast<double>(requests.size()) * static_cast<double>(state.iterations());
  state.counters["requests_per_s"] = benchmark::Counter(n, benchmark::Counter::kIsRate);
  state.counters["events"] = static_cast<double>(events);
  state.counters["events_per_s"] =
      benchmark::Counter(static_cast<double>(events) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
  state.counters["simulated_s"] = sim_end_s;
  set_rss_counters(state, reset_ok);
}
BENCHMARK(BM_SimulateDisaggregated)->Arg(100000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SimulateDisaggregated)->Arg(1000000)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

// One decode iteration's price by pricing every op (build_ops into a reused
// vector, then total_s): what the engine did before BatchPricer.
void BM_CostModelDecodeStep(benchmark::State& state) {
  const bool reset_ok = reset_peak_rss();
  const Scenario scenario = bench_scenario(1);
  const pdsim::RooflineCostModel cost(scenario.decode.gpu, scenario.model.weight_bytes, "<bench>");
  const int seqs = static_cast<int>(state.range(0));
  pdsim::BatchStats stats;
  // Mid-decode: mean prompt 1024 plus 64 of 128 output tokens already in the cache.
  for (int i = 0; i < seqs; ++i) stats.add({1, 1024 + 64});
  std::vector<pdsim::Op> ops;
  for (auto _ : state) {
    benchmark::DoNotOptimize(stats);
    pdsim::build_ops(scenario.model, scenario.decode.par, stats, ops);
    double t = cost.total_s(ops);
    benchmark::DoNotOptimize(t);
  }
  state.counters["ops"] = static_cast<double>(ops.size());
  state.counters["step_ms"] = cost.total_s(ops) * 1e3;
  set_rss_counters(state, reset_ok);
}
BENCHMARK(BM_CostModelDecodeStep)->Arg(128)->Unit(benchmark::kNanosecond);

// The same price as the engine computes it per decode step (Engine::batch_time):
// each step adds one token to every sequence, so decode attention is re-priced
// and the batch-size-only ops come from the pricer.
void BM_BatchPricerDecodeStep(benchmark::State& state) {
  const bool reset_ok = reset_peak_rss();
  const Scenario scenario = bench_scenario(1);
  const pdsim::RooflineCostModel cost(scenario.decode.gpu, scenario.model.weight_bytes, "<bench>");
  pdsim::BatchPricer pricer(cost, scenario.model, scenario.decode.par);
  const int seqs = static_cast<int>(state.range(0));
  pdsim::BatchStats stats;
  stats.keep_seqs = false;
  for (int i = 0; i < seqs; ++i) stats.add({1, 1024 + 64});
  const double context = stats.decode_kv_tokens;
  int step = 0;
  for (auto _ : state) {
    // The 64 steps around mid-decode, over and over.
    stats.decode_kv_tokens = context + static_cast<double>(seqs) * (step++ % 64 - 32);
    benchmark::DoNotOptimize(stats);
    double t = pricer.seconds(stats);
    benchmark::DoNotOptimize(t);
  }
  stats.decode_kv_tokens = context;
  state.counters["step_ms"] = pricer.seconds(stats) * 1e3;  // equals BM_CostModelDecodeStep's
  set_rss_counters(state, reset_ok);
}
BENCHMARK(BM_BatchPricerDecodeStep)->Arg(128)->Unit(benchmark::kNanosecond);

}  // namespace

BENCHMARK_MAIN();
