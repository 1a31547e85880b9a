// pdsim plan: which cluster to buy for a model, a workload and an SLO
// (search in sim/plan/plan.h). Writes plan.json, CSV tables, the best
// configuration as a runnable scenario and, when gnuplot is installed, plots.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "sim/core/error.h"
#include "sim/core/output_file.h"
#include "sim/plan/plan.h"
#include "tools/commands.h"

#ifdef PDSIM_WITH_MPI
#include <mpi.h>
#endif

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
  bool no_plots = false;
  bool exhaustive = false;
};

using ojson = nlohmann::ordered_json;

ojson pool_json(const PoolChoice& p, bool colocated) {
  ojson j = {{"gpu", p.gpu}, {"tp", p.tp}, {"pp", p.pp}, {"instances", p.instances}};
  if (colocated) j["policy"] = p.policy;
  return j;
}

ojson or_null(bool has, double v) { return has ? ojson(v) : ojson(nullptr); }

bool ran(const Candidate& c) { return c.status == Candidate::Status::kPass || c.status == Candidate::Status::kFail; }

ojson candidate_json(const Candidate& c) {
  ojson j;
  j["name"] = c.name();
  j["mode"] = c.colocated ? "colocated" : "disaggregated";
  if (c.colocated) {
    j["colocated"] = pool_json(c.pool, true);
  } else {
    j["prefill"] = pool_json(c.prefill, false);
    j["decode"] = pool_json(c.decode, false);
  }
  j["gpus"] = c.gpus;
  j["usd_per_hour"] = c.usd_per_hour;
  j["estimated_rps"] = c.estimated_rps;
  j["status"] = status_name(c.status);
  return j;
}

ojson goodput_json(const GoodputResult& g) {
  return {{"goodput_rps", g.search.goodput_rps},
          {"goodput_rps_per_gpu", g.goodput_rps_per_gpu()},
          {"goodput_rps_per_usd_hour", or_null(g.usd_per_hour > 0, g.goodput_rps_per_usd_hour())},
          {"goodput_bracket_rps", {g.search.low_rps, or_null(g.search.high_rps.has_value(), g.search.high_rps.value_or(0))}},
          {"goodput_converged", g.search.converged},
          {"goodput_probes", g.search.probes.size()}};
}

ojson point_json(const RunPoint& p) {
  return {{"rate_rps", p.rate_rps},
          {"attainment", p.attainment},
          {"output_tokens_per_s_per_gpu", p.output_tokens_per_s_per_gpu},
          {"tokens_per_s_per_user", p.tokens_per_s_per_user},
          {"ttft_p90_s", p.ttft_p90_s},
          {"tpot_p90_s", p.tpot_p90_s}};
}

ojson to_json(const PlanSpec& plan, const PlanResult& r) {
  ojson j;
  ojson modes = ojson::array();
  if (plan.disaggregated) modes.push_back("disaggregated");
  if (plan.colocated) modes.push_back("colocated");
  j["plan"] = {{"file", plan.file},
               {"scenario", plan.scenario_path},
               {"objective", objective_name(plan.objective)},
               {"target_rps", or_null(plan.objective == Objective::kTargetRate, plan.target_rps)},
               {"attainment", plan.attainment},
               {"modes", modes},
               {"max_total_gpus", plan.max_total_gpus},
               {"finalists", plan.finalists},
               {"prune_margin", plan.prune_margin},
               {"verify_seeds", plan.verify_seeds},
               {"robust_margin", plan.robust_margin},
               {"exhaustive", plan.exhaustive}};
  std::size_t pruned = 0, skipped = 0;
  for (const auto& c : r.candidates) {
    pruned += c.status == Candidate::Status::kPruned;
    skipped += c.status == Candidate::Status::kSkipped;
  }
  j["candidates_total"] = r.candidates_total;
  j["candidates_simulated"] = r.simulated;
  j["candidates_pruned"] = pruned;
  j["candidates_skipped"] = skipped;
  auto finalist = [&](std::size_t rank, std::size_t pos) {
    const Candidate& c = r.candidates[pos];
    ojson f = {{"rank", rank}};
    f.update(candidate_json(c));
    f["attainment_at_target"] = or_null(plan.objective == Objective::kTargetRate, c.attainment);
    f["attainment_at_target_min_over_seeds"] = or_null(plan.objective == Objective::kTargetRate, c.attainment_min);
    if (c.goodput) f.update(goodput_json(*c.goodput));
    f["recommended_rps"] = c.recommended_rps;
    f["recommended_rps_per_gpu"] = c.recommended_rps / c.gpus;
    f["recommended_rps_per_usd_hour"] = or_null(c.usd_per_hour > 0, c.recommended_rps / c.usd_per_hour);
    return f;
  };
  j["best"] = r.best ? finalist(1, *r.best) : ojson(nullptr);
  j["best_by_mode"] = ojson::object();
  for (const auto& [mode, pos] : r.best_by_mode) j["best_by_mode"][mode] = finalist(0, pos);
  j["message"] = r.message;
  auto& fin = j["finalists"] = ojson::array();
  for (std::size_t k = 0; k < r.finalists.size(); ++k) fin.push_back(finalist(k + 1, r.finalists[k]));
  auto& phases = j["phases"] = ojson::array();
  for (const auto& ph : r.phases)
    phases.push_back({{"role", ph.role},
                      {"pool", pool_json(ph.pool, ph.role == "colocated")},
                      {"gpus_per_instance", ph.gpus},
                      {"usd_per_hour_per_instance", ph.usd_per_hour},
                      {"goodput_rps_per_instance", ph.goodput_rps},
                      {"converged", ph.converged},
                      {"probes", ph.probes},
                      {"skipped", ph.skipped},
                      {"reason", ph.reason}});
  auto& sweep = j["sweep"] = ojson::array();
  for (const auto& s : r.sweep) {
    ojson p = {{"finalist", s.finalist + 1}, {"name", r.candidates[r.finalists[s.finalist]].name()}};
    p.update(point_json(s.point));
    sweep.push_back(p);
  }
  auto& pareto = j["pareto"] = ojson::array();
  for (std::size_t k = 0; k < r.pareto.size(); ++k) {
    ojson p = {{"finalist", r.pareto_finalist[k] + 1}, {"name", r.candidates[r.finalists[r.pareto_finalist[k]]].name()}};
    p.update(point_json(r.pareto[k]));
    pareto.push_back(p);
  }
  auto& list = j["candidates"] = ojson::array();
  for (const auto& c : r.candidates) {
    ojson e = candidate_json(c);
    e["attainment"] = or_null(ran(c) && plan.objective == Objective::kTargetRate, c.attainment);
    e["attainment_min_over_seeds"] = or_null(ran(c) && plan.objective == Objective::kTargetRate, c.attainment_min);
    e["goodput_rps"] = or_null(c.goodput.has_value(), c.goodput ? c.goodput->search.goodput_rps : 0);
    e["recommended_rps"] = or_null(c.goodput.has_value(), c.recommended_rps);
    e["reason"] = c.reason;
    list.push_back(e);
  }
  return j;
}

std::string csv_quote(const std::string& s) {
  std::string q = "\"";
  for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string pools_csv(const Candidate& c) {
  std::ostringstream o;
  const PoolChoice& p = c.colocated ? c.pool : c.prefill;
  o << (c.colocated ? "colocated" : "disaggregated") << ',' << p.gpu << ',' << p.tp << ',' << p.pp << ','
    << p.instances << ',';
  if (!c.colocated) o << c.decode.gpu << ',' << c.decode.tp << ',' << c.decode.pp << ',' << c.decode.instances;
  else o << ",,,";
  o << ',' << (c.colocated ? c.pool.policy : "");
  return o.str();
}
const char* kPoolsHeader =
    "mode,prefill_or_colocated_gpu,tp,pp,instances,decode_gpu,decode_tp,decode_pp,decode_instances,policy";

std::string candidates_csv(const PlanSpec& plan, const PlanResult& r) {
  std::ostringstream o;
  o << "index,name," << kPoolsHeader
    << ",gpus,usd_per_hour,estimated_rps,status,attainment,attainment_min_over_seeds,goodput_rps,recommended_rps,"
       "reason\n";
  const bool target = plan.objective == Objective::kTargetRate;
  for (const auto& c : r.candidates)
    o << c.index << ',' << c.name() << ',' << pools_csv(c) << ',' << c.gpus << ',' << num(c.usd_per_hour) << ','
      << num(c.estimated_rps) << ',' << status_name(c.status) << ',' << (ran(c) && target ? num(c.attainment) : "")
      << ',' << (ran(c) && target ? num(c.attainment_min) : "") << ','
      << (c.goodput ? num(c.goodput->search.goodput_rps) : "") << ','
      << (c.goodput ? num(c.recommended_rps) : "") << ',' << csv_quote(c.reason) << '\n';
  return o.str();
}

std::string finalists_csv(const PlanSpec& plan, const PlanResult& r) {
  std::ostringstream o;
  o << "rank,name," << kPoolsHeader
    << ",gpus,usd_per_hour,estimated_rps,attainment_at_target,goodput_rps,goodput_rps_per_gpu,goodput_rps_per_usd_hour,"
       "recommended_rps,recommended_rps_per_gpu,recommended_rps_per_usd_hour\n";
  for (std::size_t k = 0; k < r.finalists.size(); ++k) {
    const Candidate& c = r.candidates[r.finalists[k]];
    const GoodputResult& g = *c.goodput;
    o << k + 1 << ',' << c.name() << ',' << pools_csv(c) << ',' << c.gpus << ',' << num(c.usd_per_hour) << ','
      << num(c.estimated_rps) << ',' << (plan.objective == Objective::kTargetRate ? num(c.attainment) : "") << ','
      << num(g.search.goodput_rps) << ',' << num(g.goodput_rps_per_gpu()) << ','
      << (g.usd_per_hour > 0 ? num(g.goodput_rps_per_usd_hour()) : "") << ',' << num(c.recommended_rps) << ','
      << num(c.recommended_rps / c.gpus) << ',' << (c.usd_per_hour > 0 ? num(c.recommended_rps / c.usd_per_hour) : "")
      << '\n';
  }
  return o.str();
}

std::string phases_csv(const PlanResult& r) {
  std::ostringstream o;
  o << "role,gpu,tp,pp,policy,gpus_per_instance,usd_per_hour_per_instance,goodput_rps_per_instance,converged,probes,"
       "skipped,reason\n";
  for (const auto& ph : r.phases)
    o << ph.role << ',' << ph.pool.gpu << ',' << ph.pool.tp << ',' << ph.pool.pp << ',' << ph.pool.policy << ','
      << ph.gpus << ',' << num(ph.usd_per_hour) << ',' << num(ph.goodput_rps) << ',' << ph.converged << ','
      << ph.probes << ',' << ph.skipped << ',' << csv_quote(ph.reason) << '\n';
  return o.str();
}

std::string points_csv(const PlanResult& r, bool pareto) {
  std::ostringstream o;
  o << "finalist,name,rate_rps,attainment,output_tokens_per_s_per_gpu,tokens_per_s_per_user,ttft_p90_s,tpot_p90_s\n";
  const std::size_t n = pareto ? r.pareto.size() : r.sweep.size();
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t f = pareto ? r.pareto_finalist[k] : r.sweep[k].finalist;
    const RunPoint& p = pareto ? r.pareto[k] : r.sweep[k].point;
    o << f + 1 << ',' << r.candidates[r.finalists[f]].name() << ',' << num(p.rate_rps) << ',' << num(p.attainment)
      << ',' << num(p.output_tokens_per_s_per_gpu) << ',' << num(p.tokens_per_s_per_user) << ','
      << num(p.ttft_p90_s) << ',' << num(p.tpot_p90_s) << '\n';
  }
  return o.str();
}

// Disaggregated candidates: prefill:decode GPU ratio vs $/h (and $/h per
// req/s of goodput where measured), by status.
std::string cost_ratio_csv(const PlanResult& r) {
  std::ostringstream o;
  o << "name,prefill_gpu,decode_gpu,prefill_gpus,decode_gpus,ratio,usd_per_hour,status,usd_per_hour_per_goodput_rps,"
       "usd_per_hour_per_estimated_rps\n";
  for (const auto& c : r.candidates) {
    if (c.colocated || c.status == Candidate::Status::kSkipped) continue;
    const int pg = c.prefill.instances * c.prefill.tp * c.prefill.pp, dg = c.decode.instances * c.decode.tp * c.decode.pp;
    const bool g = c.goodput && c.recommended_rps > 0;
    o << c.name() << ',' << c.prefill.gpu << ',' << c.decode.gpu << ',' << pg << ',' << dg << ','
      << num(static_cast<double>(pg) / dg) << ',' << num(c.usd_per_hour) << ',' << status_name(c.status) << ','
      << (g ? num(c.usd_per_hour / c.recommended_rps) : "") << ','
      << (c.estimated_rps > 0 ? num(c.usd_per_hour / c.estimated_rps) : "") << '\n';
  }
  return o.str();
}

// Relative paths of the scenario (catalog, traces) were relative to the base
// scenario's directory; rewrite them relative to `to_dir`.
void rebase_paths(nlohmann::json& doc, const fs::path& from_dir, const fs::path& to_dir) {
  auto fix = [&](nlohmann::json& v) {
    if (!v.is_string()) return;
    const fs::path p = v.get<std::string>();
    if (p.is_absolute()) return;
    const fs::path abs = fs::weakly_canonical(fs::absolute(from_dir / p));
    v = fs::relative(abs, fs::weakly_canonical(fs::absolute(to_dir))).string();
  };
  if (doc.contains("catalog")) fix(doc["catalog"]);
  if (!doc.contains("workload") || !doc["workload"].is_object()) return;
  auto& w = doc["workload"];
  if (w.contains("trace") && w["trace"].is_object() && w["trace"].contains("path")) fix(w["trace"]["path"]);
  for (const char* k : {"input_tokens", "output_tokens"})
    if (w.contains(k) && w[k].is_object() && w[k].contains("trace") && w[k]["trace"].is_object() &&
        w[k]["trace"].contains("path"))
      fix(w[k]["trace"]["path"]);
}

std::string gp_quote(const std::string& s) {
  std::string q = "\"";
  for (char ch : s) q += (ch == '"' || ch == '\\') ? std::string("\\") + ch : std::string(1, ch);
  return q + "\"";
}

// A gnuplot script drawing the three plots from the CSVs in its directory,
// PNG and SVG each.
std::string plots_gp(const PlanSpec& plan, const PlanResult& r) {
  std::ostringstream o;
  const bool target = plan.objective == Objective::kTargetRate;
  o << "# pdsim plan plots; regenerate with: cd <this directory> && gnuplot plots.gp\n"
       "set datafile separator ','\nset key outside right top\nset grid\n"
       "terms = 'pngcairo svg'\nexts = 'png svg'\n"
       "if (!strstrt(GPVAL_TERMINALS, 'pngcairo')) terms = 'png svg'\n";
  const std::size_t swept = std::min<std::size_t>(3, r.finalists.size());
  o << "do for [t=1:2] {\n"
       "  set terminal word(terms, t) size 900,540\n";
  // 1. attainment vs rate
  o << "  set output 'attainment_vs_rate.'.word(exts, t)\n"
       "  set title 'SLO attainment vs arrival rate (top configurations)'\n"
       "  set xlabel 'arrival rate (req/s)'\n  set ylabel 'SLO attainment'\n  set yrange [0:1.05]\n"
       "  set logscale x\n";
  if (swept == 0) {
    o << "  plot 1/0 title 'no configuration meets the SLO'\n";
  } else {
    o << "  plot ";
    for (std::size_t f = 0; f < swept; ++f) {
      const Candidate& c = r.candidates[r.finalists[f]];
      std::string label = "#" + std::to_string(f + 1) + " " + c.name() + " " + (c.colocated ? c.pool.gpu : c.prefill.gpu + "/" + c.decode.gpu);
      o << (f ? ", " : "") << "'sweep.csv' every ::1 using 3:($1==" << f + 1 << "?$4:1/0) with linespoints title "
        << gp_quote(label);
    }
    o << ", " << plan.attainment << " with lines dashtype 2 lc rgb 'black' title 'target'\n";
  }
  o << "  unset logscale x\n  set yrange [*:*]\n";
  // 2. cost vs prefill:decode ratio
  o << "  set output 'cost_vs_ratio.'.word(exts, t)\n"
       "  set title " << gp_quote(target ? "cluster cost vs prefill:decode GPU ratio (disaggregated candidates)"
                                        : "cost per req/s of goodput vs prefill:decode GPU ratio") << "\n"
       "  set xlabel 'prefill GPUs / decode GPUs'\n  set logscale x 2\n"
       "  set ylabel " << gp_quote(target ? "$/h" : "$/h per req/s of goodput") << "\n";
  if (target)
    o << "  plot 'cost_vs_ratio.csv' every ::1 using 6:(strcol(8) eq 'pass' ? $7 : 1/0) with points pt 7 ps 1.2 "
         "title 'meets SLO at target', "
         "'cost_vs_ratio.csv' every ::1 using 6:(strcol(8) eq 'fail' ? $7 : 1/0) with points pt 2 title 'fails', "
         "'cost_vs_ratio.csv' every ::1 using 6:(strcol(8) eq 'pruned' ? $7 : 1/0) with points pt 1 lc rgb 'gray' "
         "title 'pruned (estimate too low)', "
         "'cost_vs_ratio.csv' every ::1 using 6:(strcol(8) eq 'not_evaluated' ? $7 : 1/0) with points pt 6 lc rgb "
         "'gray' title 'not needed'\n";
  else
    o << "  set logscale y\n  plot 'cost_vs_ratio.csv' every ::1 using 6:(strcol(10) ne '' ? $10 : 1/0) with points "
         "pt 1 lc rgb 'gray' title 'estimated (per-instance goodputs)', "
         "'cost_vs_ratio.csv' every ::1 using 6:(strcol(9) ne '' ? $9 : 1/0) with points pt 7 ps 1.2 "
         "title 'verified (recommended rate)'\n  unset logscale y\n";
  o << "  unset logscale x\n";
  // 3. Pareto frontier
  o << "  set output 'pareto.'.word(exts, t)\n"
       "  set title 'output tokens/s per GPU vs tokens/s per user (points meeting the SLO target)'\n"
       "  set xlabel 'output tokens/s per GPU'\n  set ylabel 'tokens/s per user (1 / mean TPOT)'\n";
  if (r.pareto.empty())
    o << "  plot 1/0 title 'no point meets the SLO'\n";
  else
    o << "  plot 'sweep.csv' every ::1 using 5:($4>=" << plan.attainment
      << "?$6:1/0) with points pt 6 lc rgb 'gray' title 'sweep points', "
         "'pareto.csv' every ::1 using 5:6 with linespoints pt 7 lw 2 title 'Pareto frontier'\n";
  o << "  set output\n}\n";
  return o.str();
}

// Runs gnuplot on plots.gp in `dir`; false (with a line on stderr) when
// gnuplot is missing or fails.
bool draw_plots(const fs::path& dir) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::fprintf(stderr, "pdsim plan: gnuplot not found: plots skipped (install gnuplot-nox; tools/install_deps.sh "
                         "does); CSV/JSON and plots.gp written\n");
    return false;
  }
  const std::string cmd = "cd '" + dir.string() + "' && gnuplot plots.gp >gnuplot.log 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "pdsim plan: gnuplot failed (see %s); CSV/JSON written\n", (dir / "gnuplot.log").c_str());
    return false;
  }
  fs::remove(dir / "gnuplot.log");
  return true;
}

#ifdef PDSIM_WITH_MPI
// MPI for one `pdsim plan` when launched by mpirun (Open MPI or PMI
// environment), nothing otherwise: a plain run never initialises MPI.
class MpiSession {
 public:
  MpiSession() {
    if (!std::getenv("OMPI_COMM_WORLD_SIZE") && !std::getenv("PMI_SIZE") && !std::getenv("PMIX_RANK")) return;
    int size = 1;
    MPI_Init(nullptr, nullptr);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    active_ = size > 1;
    initialised_ = true;
  }
  ~MpiSession() {
    if (initialised_) MPI_Finalize();
  }
  bool active() const { return active_; }

 private:
  bool initialised_ = false, active_ = false;
};

// TaskExchange over MPI_COMM_WORLD: length-prefixed strings, MPI_Allgatherv.
class MpiExchange : public TaskExchange {
 public:
  MpiExchange() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::vector<std::vector<std::string>> all_gather(const std::vector<std::string>& mine) override {
    std::string buf;
    for (const auto& s : mine) {
      const std::uint64_t n = s.size();
      buf.append(reinterpret_cast<const char*>(&n), sizeof n);
      buf += s;
    }
    PDSIM_CHECK(buf.size() < (1ull << 31), "MPI message too large");
    int len = static_cast<int>(buf.size());
    std::vector<int> lens(static_cast<std::size_t>(size_)), offsets(static_cast<std::size_t>(size_));
    MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, MPI_COMM_WORLD);
    std::size_t total = 0;
    for (int r = 0; r < size_; ++r) {
      offsets[static_cast<std::size_t>(r)] = static_cast<int>(total);
      total += static_cast<std::size_t>(lens[static_cast<std::size_t>(r)]);
    }
    PDSIM_CHECK(total < (1ull << 31), "MPI message too large");
    std::string all(total, '\0');
    MPI_Allgatherv(buf.data(), len, MPI_CHAR, all.data(), lens.data(), offsets.data(), MPI_CHAR, MPI_COMM_WORLD);
    std::vector<std::vector<std::string>> out(static_cast<std::size_t>(size_));
    for (int r = 0; r < size_; ++r) {
      std::size_t at = static_cast<std::size_t>(offsets[static_cast<std::size_t>(r)]);
      const std::size_t end = at + static_cast<std::size_t>(lens[static_cast<std::size_t>(r)]);
      while (at < end) {
        std::uint64_t n = 0;
        std::memcpy(&n, all.data() + at, sizeof n);
        at += sizeof n;
        out[static_cast<std::size_t>(r)].push_back(all.substr(at, n));
        at += n;
      }
    }
    return out;
  }

 private:
  int rank_ = 0, size_ = 1;
};
#endif

const char* kOutputs[] = {"plan.json", "candidates.csv", "finalists.csv", "phases.csv", "sweep.csv",
                          "pareto.csv", "cost_vs_ratio.csv", "best_scenario.json", "plots.gp"};

int plan(const PlanCliOptions& o, const GlobalOptions& global) {
  // Under mpirun (MPI build), every rank runs the plan and takes a share of
  // each stage's simulations; rank 0 alone writes and prints.
  TaskExchange* exchange = nullptr;
  int rank = 0;
#ifdef PDSIM_WITH_MPI
  MpiSession mpi;
  std::optional<MpiExchange> mpi_exchange;
  if (mpi.active()) {
    exchange = &mpi_exchange.emplace();
    rank = exchange->rank();
  }
#endif
  const fs::path out_dir = o.out_dir.empty() ? fs::path("out") / fs::path(o.plan).stem() : fs::path(o.out_dir);
  if (rank == 0) {
    for (const char* name : kOutputs) remove_stale_output(out_dir / name);
    for (int k = 2; k <= 100; ++k) remove_stale_output(out_dir / ("finalist_" + std::to_string(k) + ".json"));
    create_output_dir(out_dir);
  }
  PlanSpec spec = load_plan(o.plan, global.data_dir);
  if (o.exhaustive) spec.exhaustive = true;
  LoadOptions load;
  load.data_dir = global.data_dir;
  load.overrides = o.overrides;
  load.seed_override = o.seed;
  const int jobs = o.jobs > 0 ? o.jobs : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));

  PlanProgress progress;
  const auto start = std::chrono::steady_clock::now();
  auto stage_start = start;
  if (rank == 0 && !o.quiet && !o.json && isatty(STDERR_FILENO)) {
    progress = [&stage_start, start](const std::string& stage, std::size_t done, std::size_t total, bool at_most) {
      const auto now = std::chrono::steady_clock::now();
      if (done == 0) stage_start = now;
      const double stage_s = std::chrono::duration<double>(now - stage_start).count();
      const double all_s = std::chrono::duration<double>(now - start).count();
      char eta[48] = "--";
      if (done > 0 && done < total)
        std::snprintf(eta, sizeof eta, "%s%.0f s", at_most ? "<= " : "", stage_s / done * (total - done));
      std::fprintf(stderr, "\r\033[Kplan: %s %zu/%s%zu, ETA %s (elapsed %.0f s)", stage.c_str(), done,
                   at_most && done < total ? "<=" : "", total, done >= total ? "0 s" : eta, all_s);
      if (done >= total) std::fprintf(stderr, "\n");
    };
  }
  const PlanResult result = run_plan(spec, load, jobs, progress, exchange);
  if (rank != 0) return 0;
  const auto j = to_json(spec, result);

  write_file_atomically(out_dir / "candidates.csv", candidates_csv(spec, result));
  write_file_atomically(out_dir / "finalists.csv", finalists_csv(spec, result));
  write_file_atomically(out_dir / "phases.csv", phases_csv(result));
  write_file_atomically(out_dir / "sweep.csv", points_csv(result, false));
  write_file_atomically(out_dir / "pareto.csv", points_csv(result, true));
  write_file_atomically(out_dir / "cost_vs_ratio.csv", cost_ratio_csv(result));
  write_file_atomically(out_dir / "plots.gp", plots_gp(spec, result));
  // Every finalist as a runnable scenario at the rate it was recommended for.
  for (std::size_t k = 0; k < result.finalists.size(); ++k) {
    const Candidate& c = result.candidates[result.finalists[k]];
    const double rate = spec.objective == Objective::kTargetRate ? spec.target_rps : c.recommended_rps;
    if (!(rate > 0)) continue;
    nlohmann::json doc = candidate_document(spec, load, c, rate);
    rebase_paths(doc, fs::path(spec.scenario_path).parent_path(), out_dir);
    doc["name"] = fs::path(o.plan).stem().string() + (k == 0 ? "-best" : "-finalist-" + std::to_string(k + 1));
    if (o.seed >= 0) doc["seed"] = o.seed;
    write_file_atomically(out_dir / (k == 0 ? std::string("best_scenario.json") : "finalist_" + std::to_string(k + 1) + ".json"),
               doc.dump(2) + "\n");
  }
  write_file_atomically(out_dir / "plan.json", j.dump(2) + "\n");  // last of the data: its presence marks a complete run
  if (!o.no_plots) draw_plots(out_dir);
  if (o.json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  if (o.quiet) return 0;
  std::size_t pruned = 0, skipped = 0;
  for (const auto& c : result.candidates) {
    pruned += c.status == Candidate::Status::kPruned;
    skipped += c.status == Candidate::Status::kSkipped;
  }
  const bool target = spec.objective == Objective::kTargetRate;
  if (target)
    std::printf("plan %s: cheapest cluster for %g req/s at SLO attainment >= %g\n", spec.file.c_str(),
                spec.target_rps, spec.attainment);
  else
    std::printf("plan %s: highest goodput per %s at SLO attainment >= %g\n", spec.file.c_str(),
                spec.objective == Objective::kGoodputPerGpu ? "GPU" : "$/h", spec.attainment);
  std::printf("%zu phase configurations; %zu candidates: %zu simulated, %zu pruned, %zu skipped; %zu simulations in "
              "%.1f s on %d threads%s\n",
              result.phases.size(), result.candidates_total, result.simulated, pruned, skipped, result.simulations,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), jobs,
              exchange ? (" x " + std::to_string(exchange->size()) + " processes (simulations: this process)").c_str()
                       : "");
  std::printf("rank  name  pools                                       gpus     $/h  est_rps  goodput  rec_rps  "
              "rec/gpu  rec/$/h%s\n",
              target ? "  att@target (min over seeds)" : "");
  for (std::size_t k = 0; k < result.finalists.size(); ++k) {
    const Candidate& c = result.candidates[result.finalists[k]];
    char pools[128];
    if (c.colocated)
      std::snprintf(pools, sizeof pools, "%d x %s tp%d pp%d %s", c.pool.instances, c.pool.gpu.c_str(), c.pool.tp,
                    c.pool.pp, c.pool.policy.c_str());
    else
      std::snprintf(pools, sizeof pools, "%d x %s tp%d pp%d + %d x %s tp%d pp%d", c.prefill.instances,
                    c.prefill.gpu.c_str(), c.prefill.tp, c.prefill.pp, c.decode.instances, c.decode.gpu.c_str(),
                    c.decode.tp, c.decode.pp);
    const GoodputResult& g = *c.goodput;
    std::printf("%4zu  %-5s %-43s %4d %7.2f %8.4g %8.4g %8.4g %8.4g %8.4g", k + 1, c.name().c_str(), pools, c.gpus,
                c.usd_per_hour, c.estimated_rps, g.search.goodput_rps, c.recommended_rps, c.recommended_rps / c.gpus,
                c.usd_per_hour > 0 ? c.recommended_rps / c.usd_per_hour : 0.0);
    if (target) std::printf("  %.4f (%.4f)", c.attainment, c.attainment_min);
    std::printf("\n");
  }
  std::printf("%s\n", result.message.c_str());
  for (const auto& [mode, pos] : result.best_by_mode) {
    const Candidate& c = result.candidates[pos];
    std::printf("best %s: %s on %s, goodput %.4g req/s, recommended %.4g req/s = %.4g per GPU, %.4g per $/h\n",
                mode.c_str(), c.name().c_str(), c.colocated ? c.pool.gpu.c_str() : (c.prefill.gpu + "/" + c.decode.gpu).c_str(),
                c.goodput->search.goodput_rps, c.recommended_rps, c.recommended_rps / c.gpus,
                c.usd_per_hour > 0 ? c.recommended_rps / c.usd_per_hour : 0.0);
  }
  std::printf("results: %s (plan.json, candidates.csv, finalists.csv, phases.csv, sweep.csv, pareto.csv, "
              "cost_vs_ratio.csv%s, plots.gp)\n",
              out_dir.string().c_str(), result.best ? ", best_scenario.json, finalist_<rank>.json" : "");
  return 0;
}

}  // namespace

Command add_plan_command(CLI::App& app, const GlobalOptions& global) {
  auto o = std::make_shared<PlanCliOptions>();
  app.add_option("plan", o->plan, "plan JSON file (base scenario, objective, search space)")->required();
  app.add_option("--out", o->out_dir, "output directory (default: out/<plan name>)");
  app.add_option("--jobs", o->jobs, "simulations in parallel (default: hardware threads); results do not depend on it")
      ->check(CLI::Range(1, 1024));
  app.add_option("--seed", o->seed, "override the base scenario's seed")->check(CLI::NonNegativeNumber);
  app.add_option("--set", o->overrides, "override a base scenario value: PATH=VALUE");
  app.add_flag("--json", o->json, "print plan.json on stdout");
  app.add_flag("--quiet", o->quiet, "print nothing on success");
  app.add_flag("--exhaustive", o->exhaustive, "simulate every candidate: no pruning, no early stop (benchmarks)");
  app.add_flag("--no-plots", o->no_plots, "do not run gnuplot (plots.gp is still written)");
  return [o, &global] { return plan(*o, global); };
}

}  // namespace pdsim::cli
