// Capacity planning: which cluster (prefill:decode xPyD, or colocated) to
// buy for a model, a workload and an SLO.
//
// A plan file names a base scenario (model, workload, SLO, KV link, router,
// cost model, batch limits: everything but the pools' GPU type, TP/PP and
// instance count) and a search space:
//
//   { "scenario": "../scenarios/quickstart.json",   // relative to the plan file
//     "objective": "target_rps",                      // or goodput_per_gpu | goodput_per_usd
//     "target_rps": 20,                               // rate to sustain (objective target_rps)
//     "attainment": 0.9,                              // optional (0.9)
//     "slo": {"ttft_s": 0.25, "tpot_s": 0.1},         // optional: replaces the scenario's
//     "modes": ["disaggregated", "colocated"],        // optional (["disaggregated"])
//     "prefill": {"gpus": ["h100-sxm", {"name": "l40s", "price_usd_per_hour": 1.5, "max_count": 8}],
//                 "tp": [1, 2], "pp": [1], "instances": [1, 4]},
//     "decode":  {"gpus": ["h100-sxm"], "tp": [1], "instances": [1, 4]},
//     "colocated": {"gpus": ["h100-sxm"], "tp": [1], "policies": ["prefill_priority", "chunked"],
//                   "instances": [1, 8]},
//     "max_total_gpus": 16,                           // optional (no limit)
//     "finalists": 3, "prune_margin": 0.1,            // optional
//     "verify_seeds": 2, "robust_margin": 0.05, "exhaustive": false,  // optional
//     "phase_goodput": {"tolerance": 0.02, "max_probes": 30},   // optional: per-instance searches
//     "goodput": {"tolerance": 0.01, "max_probes": 40},         // optional: finalists' searches
//     "sweep": [0.25, 0.5, 0.75, 0.9, 1, 1.1, 1.25] }            // optional: rates / goodput
//
// Search, in four stages (every stage runs its independent simulations on
// `jobs` threads; results land by index, so the outcome does not depend on
// `jobs`):
//  1. Phase configurations: every (gpu, tp, pp) of the prefill pool, of the
//     decode pool, and (gpu, tp, pp, policy) of the colocated pool. The
//     per-instance goodput of each (sim/plan/goodput.h search on one instance):
//       prefill:   one instance, every request cut to one output token (so the
//                  request ends at its first token: no decode), TTFT bound only;
//       decode:    one instance, TPOT bound only, fed by a prefill pool of the
//                  best prefill configuration sized per probe to twice the
//                  probe's rate over that configuration's goodput (never the
//                  bottleneck);
//       colocated: one instance, both bounds.
//     A configuration the model cannot run on is skipped with the reason.
//  2. Candidates: every (prefill config, x) x (decode config, y) and every
//     (colocated config, n) within the instance ranges, max_count per GPU and
//     max_total_gpus. Estimated capacity: min(x p, y d) or n c (req/s), with
//     p, d, c the per-instance goodputs.
//  3. Verification by full simulation of the whole cluster, in a fixed order:
//       target_rps: candidates whose estimate x (1 + prune_margin) < target are
//         pruned (dominated: an instance would receive more than its goodput);
//         the rest in order of ($/h, GPUs, enumeration), each simulated at the
//         target; stop after `finalists` passes.
//       goodput_per_gpu / per_usd: candidates in order of estimated goodput per
//         GPU (per $/h); each verified one gets a full goodput search of the
//         whole cluster; stop once `finalists` are verified and the next
//         estimate / (1 + prune_margin) is below the finalists' worst measured
//         score (the rest are pruned), or after 4 x finalists verifications.
//     The stopping point is decided scanning in order, so work done past it
//     by a parallel wave is discarded: the result is identical for any jobs.
//     A candidate passes only if its attainment is at least the target +
//     robust_margin on the scenario's seed and on `verify_seeds` more
//     (seed+1, ...): an answer must not hinge on one random draw, nor sit on
//     the cliff where attainment collapses. Maximize objectives rank by the
//     recommended rate: the goodput backed off in 5% steps until that holds,
//     then one step more (Candidate::recommended_rps).
//     With both modes searched, a mode with no passing candidate so far has
//     its own candidates scanned the same way for one answer (best_by_mode).
//  4. For the (up to 3) best finalists: their goodput (target_rps objective:
//     searched from the target), then a sweep of rates (`sweep` x goodput)
//     giving SLO attainment vs rate and the points of the Pareto frontier of
//     output tokens/s per GPU vs tokens/s per user (1 / mean TPOT).
#pragma once
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/config/scenario.h"
#include "sim/plan/goodput.h"

namespace pdsim {

struct GpuLimit {
  std::optional<double> price_usd_per_hour;  // replaces the profile's price
  int max_count = 0;                         // GPUs of this type in this pool; 0 = no limit
};

struct PoolSpace {
  std::vector<std::string> gpus;
  std::vector<int> tp;
  int min_instances = 1, max_instances = 1;
  std::vector<int> pp = {1};
  std::vector<std::string> policies = {"prefill_priority"};  // colocated only
  std::map<std::string, GpuLimit> limits;                    // by GPU name
};

enum class Objective { kTargetRate, kGoodputPerGpu, kGoodputPerUsd };
const char* objective_name(Objective objective);

struct PlanSpec {
  std::string file;           // the plan file, for messages
  std::string scenario_path;  // resolved
  Objective objective = Objective::kTargetRate;
  double target_rps = 0;      // objective kTargetRate
  double attainment = 0.9;
  std::optional<nlohmann::json> slo;  // replaces the base scenario's "slo"
  bool disaggregated = true, colocated = false;
  PoolSpace prefill, decode, colocated_space;
  int max_total_gpus = 0;  // 0 = no limit
  int finalists = 3;
  double prune_margin = 0.1;
  GoodputOptions phase_goodput{0.9, 0.02, 30, 1e-6};  // attainment copied from `attainment`
  GoodputOptions goodput;                             // attainment copied from `attainment`
  std::vector<double> sweep = {0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25};
  // Seeds seed+1 .. seed+verify_seeds re-check every answer (see Candidate).
  int verify_seeds = 2;
  // A pass needs attainment >= attainment + robust_margin (at most 1) on
  // every one of those seeds: an answer must not sit on the cliff edge.
  double robust_margin = 0.05;
  // No pruning, no early stop: every candidate is simulated (target: at the
  // target rate; maximize: a goodput search each). For benchmarks and checks.
  bool exhaustive = false;
};

// Strict: unknown keys, wrong types, empty lists, unknown GPU names and bad
// ranges are InputErrors naming the file and JSON path.
PlanSpec load_plan(const std::string& path, const std::string& data_dir);

struct PoolChoice {
  std::string gpu;
  int tp = 1;
  int instances = 1;
  int pp = 1;
  std::string policy;  // colocated only
};

// One (gpu, tp, pp[, policy]) of one pool and its per-instance goodput.
struct PhaseConfig {
  std::string role;  // "prefill", "decode" or "colocated"
  PoolChoice pool;   // instances = 1
  int gpus = 0;      // per instance
  double usd_per_hour = 0;  // per instance
  bool skipped = false;
  std::string reason;       // skipped: why
  double goodput_rps = 0;   // per instance; 0 when infeasible or skipped
  bool converged = false;
  std::size_t probes = 0;
};

// Metrics of one full simulation of a cluster at one rate.
struct RunPoint {
  double rate_rps = 0;
  double attainment = 0;
  double output_tokens_per_s_per_gpu = 0;
  double tokens_per_s_per_user = 0;  // 1 / mean TPOT (0 when no request has a TPOT)
  double ttft_p90_s = 0, tpot_p90_s = 0;
};

struct Candidate {
  std::size_t index = 0;  // enumeration order
  bool colocated = false;
  PoolChoice prefill, decode;  // disaggregated
  PoolChoice pool;             // colocated
  int gpus = 0;
  double usd_per_hour = 0;
  double estimated_rps = 0;  // from the per-instance goodputs
  enum class Status { kNotEvaluated, kPass, kFail, kSkipped, kPruned };
  Status status = Status::kNotEvaluated;
  double attainment = 0;  // at target_rps, scenario seed (target objective; pass/fail only)
  double attainment_min = 0;  // target objective: min over the seeds run (see PlanSpec::robust_margin)
  std::optional<GoodputResult> goodput;  // finalists (and every verified one, maximize objectives)
  // The rate to run it at: G x (1 - 0.05 k) (G = goodput_rps) for the
  // smallest k in 1..19 such that at both this rate and the step above it
  // the attainment is >= target + robust_margin on the scenario seed and
  // every verify seed (a 5% guard band below the highest robust rate: the
  // cliff where attainment collapses moves with the seed). 0 if none.
  // Maximize objectives rank by it.
  double recommended_rps = 0;
  std::string reason;     // skipped / pruned: why
  std::string name() const;  // "2P1D" or "4C"
};

const char* status_name(Candidate::Status status);

struct SweepPoint {
  std::size_t finalist = 0;  // position in PlanResult::finalists
  RunPoint point;
};

struct PlanResult {
  std::vector<PhaseConfig> phases;
  std::vector<Candidate> candidates;     // every candidate, in search order
  std::size_t candidates_total = 0;      // = candidates.size()
  std::size_t simulated = 0;             // candidates verified by a full simulation
  std::vector<std::size_t> finalists;    // positions in `candidates`, ranked best first
  std::optional<std::size_t> best;       // = finalists[0] when any
  // "disaggregated" / "colocated" -> the best passing candidate of that mode
  // (its top estimated candidates are verified even when the other mode
  // fills the finalists), for comparing the modes.
  std::map<std::string, std::size_t> best_by_mode;
  std::vector<SweepPoint> sweep;         // attainment vs rate of the top (up to 3) finalists
  std::vector<RunPoint> pareto;          // non-dominated sweep points meeting the attainment target
  std::vector<std::size_t> pareto_finalist;  // finalist of each pareto point
  std::string message;
  // Full simulations run, all stages (work a parallel wave did past a
  // stopping point included, so this one number may depend on jobs).
  std::size_t simulations = 0;
};

// Progress: stage name, tasks done, total. When `at_most`, total is an upper
// bound (the stage may stop early); a stage that stops early reports a last
// call with total = done.
using PlanProgress =
    std::function<void(const std::string& stage, std::size_t done, std::size_t total, bool at_most)>;

// Spreads the independent tasks of each stage over processes (MPI ranks in
// tools/cmd_plan.cc). Every process runs run_plan on the same inputs; task i
// of a stage runs on process i % size(), then all_gather gives every process
// every result, so every process ends with the same PlanResult.
class TaskExchange {
 public:
  virtual ~TaskExchange() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Collective: every process passes its results (of the tasks it owns, in
  // task order); returns every process's, indexed by rank.
  virtual std::vector<std::vector<std::string>> all_gather(const std::vector<std::string>& mine) = 0;
};

// REQUIRES: jobs >= 1. Deterministic and independent of jobs and of the
// number of processes of `exchange` (nullptr: this process does everything).
PlanResult run_plan(const PlanSpec& plan, const LoadOptions& load, int jobs, const PlanProgress& progress = {},
                    TaskExchange* exchange = nullptr);

// The scenario document of a candidate (base scenario, --set, plan SLO,
// candidate pools), at `rate_rps` when > 0. Relative paths in it stay
// relative to the base scenario's directory.
nlohmann::json candidate_document(const PlanSpec& plan, const LoadOptions& load, const Candidate& c,
                                  double rate_rps);

}  // namespace pdsim
