#include "sim/metrics/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace pdsim {

namespace {

nlohmann::ordered_json dist_json(const Distribution& d) {
  return {{"mean", d.mean}, {"p50", d.p50}, {"p90", d.p90}, {"p99", d.p99}, {"max", d.max}};
}

// Time average, per instance, of a quantity whose integral over the run
// (summed over `instances`) is integral_s, over the summary's window: first
// arrival to last finish (nothing is busy or held outside it). Utilisation
// and KV use both go through here.
double time_average(double integral_s, double window_s, int instances) {
  return window_s > 0 ? integral_s / (instances * window_s) : 0.0;
}

nlohmann::ordered_json pool_json(const PoolStats& p, double duration_s) {
  nlohmann::ordered_json j;
  j["instances"] = p.instances;
  j["gpus"] = p.gpus;
  j["utilization"] = time_average(p.busy_s, duration_s, p.instances);
  j["batches"] = p.batches;
  j["mean_batch_requests"] = p.batches ? static_cast<double>(p.batch_requests) / p.batches : 0.0;
  j["mean_batch_tokens"] = p.batches ? static_cast<double>(p.batch_tokens) / p.batches : 0.0;
  j["kv_capacity_tokens_per_instance"] = p.kv_capacity_tokens;
  j["kv_peak_fraction"] = p.kv_peak_fraction;
  j["kv_mean_fraction"] = time_average(p.kv_fraction_s, duration_s, p.instances);
  return j;
}

}  // namespace

nlohmann::ordered_json make_summary(const Scenario& s, const SimResult& r) {
  std::vector<double> ttft, tpot, e2e, first_tbt;
  ttft.reserve(r.records.size());
  e2e.reserve(r.records.size());
  std::size_t met_both = 0, met_ttft = 0, met_tpot = 0;
  double input_tokens = 0, output_tokens = 0;
  SimTime first_arrival = r.records.empty() ? 0 : r.records.front().arrival, last_finish = 0;
  for (const auto& rec : r.records) {
    ttft.push_back(rec.ttft_s());
    e2e.push_back(rec.e2e_s());
    if (rec.output_tokens > 1) tpot.push_back(rec.tpot_s());
    if (rec.first_tbt >= 0) first_tbt.push_back(ns_to_seconds(rec.first_tbt));
    const bool ok_ttft = rec.ttft_s() <= s.slo.ttft_s;
    const bool ok_tpot = rec.tpot_s() <= s.slo.tpot_s;  // one-token requests have no TPOT: met
    met_ttft += ok_ttft;
    met_tpot += ok_tpot;
    met_both += ok_ttft && ok_tpot;
    input_tokens += rec.input_tokens;
    output_tokens += rec.output_tokens;
    first_arrival = std::min(first_arrival, rec.arrival);
    last_finish = std::max(last_finish, rec.finish);
  }
  const double n = static_cast<double>(r.records.size());
  const double duration = ns_to_seconds(last_finish - first_arrival);
  const int gpus = s.total_gpus();

  nlohmann::ordered_json j;
  j["scenario"] = {{"name", s.name},
                   {"file", s.file},
                   {"mode", s.mode == Mode::kDisaggregated ? "disaggregated" : "colocated"},
                   {"model", s.model.name},
                   {"seed", s.seed},
                   {"cost_model", s.cost_model},
                   {"gpus", gpus}};
  j["requests"] = {{"completed", r.records.size()},
                   {"input_tokens_mean", n ? input_tokens / n : 0.0},
                   {"output_tokens_mean", n ? output_tokens / n : 0.0}};
  // Sorted once for both the distributions and the SLO percentiles.
  std::sort(ttft.begin(), ttft.end());
  std::sort(tpot.begin(), tpot.end());
  j["ttft_s"] = dist_json(distribution_of_sorted(ttft));
  j["tpot_s"] = dist_json(distribution_of_sorted(tpot));
  const double tbt_p99 = r.tbt.quantile_s(99);
  j["tbt_s"] = {{"mean", r.tbt.mean_s()},
                {"p50", r.tbt.quantile_s(50)},
                {"p90", r.tbt.quantile_s(90)},
                {"p99", tbt_p99},
                {"max", r.tbt.max_s()},
                {"count", r.tbt.count()}};
  const Distribution first_tbt_d = distribution_of(first_tbt);
  j["first_tbt_s"] = dist_json(first_tbt_d);
  j["first_tbt_s"]["count"] = first_tbt_d.count;
  // How much of the TBT p99 tail (the top 1% of gaps) first gaps make.
  j["first_tbt_s"]["at_or_above_tbt_p99"] =
      std::count_if(first_tbt.begin(), first_tbt.end(), [&](double g) { return g >= tbt_p99; });
  j["e2e_s"] = dist_json(distribution_of(e2e));
  const double ttft_pct = sorted_percentile(ttft, s.slo.ttft_percentile);
  const double tpot_pct = sorted_percentile(tpot, s.slo.tpot_percentile);
  j["slo"] = {{"ttft_s", s.slo.ttft_s},
              {"ttft_percentile", s.slo.ttft_percentile},
              {"tpot_s", s.slo.tpot_s},
              {"tpot_percentile", s.slo.tpot_percentile},
              {"attainment", n ? met_both / n : 0.0},
              {"ttft_attainment", n ? met_ttft / n : 0.0},
              {"tpot_attainment", n ? met_tpot / n : 0.0},
              {"ttft_at_percentile_s", ttft_pct},
              {"tpot_at_percentile_s", tpot_pct},
              {"met", ttft_pct <= s.slo.ttft_s && tpot_pct <= s.slo.tpot_s}};
  const double out_tps = duration > 0 ? output_tokens / duration : 0.0;
  j["throughput"] = {{"duration_s", duration},
                     {"requests_per_s", duration > 0 ? n / duration : 0.0},
                     {"input_tokens_per_s", duration > 0 ? input_tokens / duration : 0.0},
                     {"output_tokens_per_s", out_tps},
                     {"output_tokens_per_s_per_gpu", out_tps / gpus},
                     {"requests_per_s_per_gpu", duration > 0 ? n / duration / gpus : 0.0}};
  nlohmann::ordered_json util, pools;
  if (s.mode == Mode::kDisaggregated) {
    pools["prefill"] = pool_json(r.prefill, duration);
    pools["decode"] = pool_json(r.decode, duration);
    util["prefill"] = pools["prefill"]["utilization"];
    util["decode"] = pools["decode"]["utilization"];
  } else {
    pools["colocated"] = pool_json(r.colocated, duration);
    util["colocated"] = pools["colocated"]["utilization"];
  }
  j["utilization"] = util;
  j["pools"] = pools;
  j["kv_transfer"] = {{"bytes_moved", r.kv_bytes_moved}};
  double usd_per_hour = 0;
  if (s.mode == Mode::kDisaggregated)
    usd_per_hour = s.prefill.gpus() * s.prefill.gpu.price_usd_per_hour + s.decode.gpus() * s.decode.gpu.price_usd_per_hour;
  else
    usd_per_hour = s.colocated.gpus() * s.colocated.gpu.price_usd_per_hour;
  const double dollars = usd_per_hour * duration / 3600.0;
  j["cost"] = {{"usd_per_hour", usd_per_hour},
               {"usd_total", dollars},
               {"usd_per_million_output_tokens", output_tokens > 0 ? dollars / (output_tokens / 1e6) : 0.0}};
  j["sim"] = {{"end_time_s", ns_to_seconds(r.end_time)}, {"events", r.events}};
  if (r.real_kernel.present)
    j["real_kernel"] = {{"backend", r.real_kernel.backend},
                        {"device", r.real_kernel.device},
                        {"layers_run", r.real_kernel.layers},
                        {"batches_measured", r.real_kernel.batches_measured},
                        {"batches_memoized", r.real_kernel.batches_memoized},
                        {"batches_replayed", r.real_kernel.batches_replayed},
                        {"timings_file", s.real_kernel.timings_file}};
  return j;
}

namespace {
// Whole nanoseconds as seconds with 9 decimals, formatted exactly in integers
// (faster than printf of a double, and free of binary rounding).
void append_ns(std::string& line, SimTime ns) {
  if (ns < 0) return;  // stage did not happen: empty field
  char buf[32];
  const int len = std::snprintf(buf, sizeof buf, "%lld.%09lld", static_cast<long long>(ns / kNsPerSecond),
                                static_cast<long long>(ns % kNsPerSecond));
  line.append(buf, static_cast<std::size_t>(len));
}
}  // namespace

void write_requests_csv(std::ostream& out, const SimResult& r) {
  out << "id,input_tokens,output_tokens,arrival_s,prefill_start_s,prefill_end_s,transfer_start_s,"
         "transfer_end_s,decode_start_s,first_token_s,finish_s,ttft_s,tpot_s,e2e_s,max_tbt_s,"
         "prefill_instance,decode_instance,first_tbt_s\n";
  std::string line;
  char buf[64];
  for (const auto& rec : r.records) {
    line.clear();
    line += std::to_string(rec.id) + ',' + std::to_string(rec.input_tokens) + ',' +
            std::to_string(rec.output_tokens) + ',';
    for (SimTime t : {rec.arrival, rec.prefill_start, rec.prefill_end, rec.transfer_start, rec.transfer_end,
                      rec.decode_start, rec.first_token, rec.finish}) {
      append_ns(line, t);
      line += ',';
    }
    append_ns(line, rec.first_token - rec.arrival);
    line += ',';
    if (rec.output_tokens > 1) line.append(buf, static_cast<std::size_t>(std::snprintf(buf, sizeof buf, "%.9f", rec.tpot_s())));
    line += ',';
    append_ns(line, rec.finish - rec.arrival);
    line += ',';
    if (rec.output_tokens > 1) append_ns(line, rec.max_tbt);
    line += ',' + std::to_string(rec.prefill_instance) + ',' + std::to_string(rec.decode_instance) + ',';
    if (rec.first_tbt >= 0) append_ns(line, rec.first_tbt);
    line += '\n';
    out << line;
  }
}

void write_batches_csv_header(std::ostream& out) {
  out << "start_s,end_s,pool,instance,prefill_seqs,prefill_tokens,decode_seqs,decode_kv_tokens,new_tokens\n";
}

void write_batches_csv_row(std::ostream& out, const BatchRecord& b) {
  std::string line;
  append_ns(line, b.start);
  line += ',';
  append_ns(line, b.start + b.duration);
  const BatchStats& s = b.stats;
  line += std::string(",") + b.pool + ',' + std::to_string(b.instance) + ',' + std::to_string(s.prefill_seqs) + ',' +
          std::to_string(s.prefill_tokens) + ',' + std::to_string(s.decode_seqs) + ',' +
          std::to_string(std::llround(s.decode_kv_tokens)) + ',' + std::to_string(s.new_tokens) + '\n';
  out << line;
}

std::string summary_table(const nlohmann::ordered_json& j) {
  std::ostringstream o;
  char line[256];
  const auto& sc = j["scenario"];
  o << "scenario " << sc["name"].get<std::string>() << ": " << sc["mode"].get<std::string>() << ", "
    << sc["model"].get<std::string>() << ", " << sc["gpus"].get<int>() << " GPUs, cost model "
    << sc["cost_model"].get<std::string>() << ", seed " << sc["seed"].get<std::uint64_t>() << "\n";
  std::snprintf(line, sizeof line, "requests completed %zu in %.2f s simulated\n",
                j["requests"]["completed"].get<std::size_t>(), j["throughput"]["duration_s"].get<double>());
  o << line;
  o << "metric        mean        p50        p90        p99        max\n";
  for (const char* key : {"ttft_s", "tpot_s", "tbt_s", "e2e_s"}) {
    const auto& d = j[key];
    std::snprintf(line, sizeof line, "%-8s %9.4f  %9.4f  %9.4f  %9.4f  %9.4f\n", key, d["mean"].get<double>(),
                  d["p50"].get<double>(), d["p90"].get<double>(), d["p99"].get<double>(), d["max"].get<double>());
    o << line;
  }
  const auto& slo = j["slo"];
  std::snprintf(line, sizeof line,
                "SLO P%g TTFT <= %g s: %.4f s; P%g TPOT <= %g s: %.4f s; attainment %.1f%% (%s)\n",
                slo["ttft_percentile"].get<double>(), slo["ttft_s"].get<double>(),
                slo["ttft_at_percentile_s"].get<double>(), slo["tpot_percentile"].get<double>(),
                slo["tpot_s"].get<double>(), slo["tpot_at_percentile_s"].get<double>(),
                100 * slo["attainment"].get<double>(), slo["met"].get<bool>() ? "met" : "NOT met");
  o << line;
  const auto& tp = j["throughput"];
  std::snprintf(line, sizeof line, "throughput %.3f req/s, %.1f output tok/s (%.1f per GPU)\n",
                tp["requests_per_s"].get<double>(), tp["output_tokens_per_s"].get<double>(),
                tp["output_tokens_per_s_per_gpu"].get<double>());
  o << line;
  for (const auto& [pool, p] : j["pools"].items()) {
    std::snprintf(line, sizeof line, "%-9s util %5.1f%%  mean batch %.1f req / %.0f tok  KV peak %.1f%% mean %.1f%%\n",
                  pool.c_str(), 100 * p["utilization"].get<double>(), p["mean_batch_requests"].get<double>(),
                  p["mean_batch_tokens"].get<double>(), 100 * p["kv_peak_fraction"].get<double>(),
                  100 * p["kv_mean_fraction"].get<double>());
    o << line;
  }
  std::snprintf(line, sizeof line, "cost $%.2f/h, $%.4f per million output tokens\n",
                j["cost"]["usd_per_hour"].get<double>(), j["cost"]["usd_per_million_output_tokens"].get<double>());
  o << line;
  return o.str();
}

}  // namespace pdsim
