// Capacity planning: the cheapest prefill:decode (xPyD) configuration that
// serves a target arrival rate within the SLO.
//
// A plan file names a base scenario (model, workload, SLO, KV link, router,
// cost model: everything but the pools' GPU type, TP and instance count) and
// a search space per pool:
//
//   { "scenario": "../scenarios/quickstart.json",   // relative to the plan file
//     "target_rps": 20,                               // rate to sustain
//     "attainment": 0.9,                              // optional (0.9)
//     "prefill": {"gpus": ["h100-sxm", "l40s"], "tp": [1, 2], "instances": [1, 4]},
//     "decode":  {"gpus": ["h100-sxm"],         "tp": [1],    "instances": [1, 4]},
//     "max_total_gpus": 16,                           // optional (no limit)
//     "goodput": {"tolerance": 0.01, "max_probes": 40} }  // optional: for the winner
//
// `instances` is an inclusive [min, max] range. Candidates are every
// (prefill gpu, tp, x) x (decode gpu, tp, y) within max_total_gpus; a
// candidate the model cannot run on (weights do not fit, tp does not divide
// the heads, a request can never fit its KV cache) is "skipped" with the
// reason. The base scenario must be disaggregated with an open-loop or trace
// workload.
//
// Search: candidates are ordered by (usd_per_hour, gpus, enumeration order)
// and evaluated in that order, in waves of `jobs` candidates run in parallel
// (one simulation each, at target_rps, with the scenario's seed). A candidate
// passes when its SLO attainment at target_rps >= the target. The answer is
// the first passing candidate in that order: the cheapest (fewest GPUs among
// equal prices). Its goodput is then searched (sim/plan/goodput.h) to report
// the headroom. Only candidates up to the answer are reported (waves may have
// evaluated a few more; they are dropped), so the result is identical for any
// `jobs`.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "sim/config/scenario.h"
#include "sim/plan/goodput.h"

namespace pdsim {

struct PoolSpace {
  std::vector<std::string> gpus;
  std::vector<int> tp;
  int min_instances = 1, max_instances = 1;
};

struct PlanSpec {
  std::string file;           // the plan file, for messages
  std::string scenario_path;  // resolved
  double target_rps = 0;
  double attainment = 0.9;
  PoolSpace prefill, decode;
  int max_total_gpus = 0;  // 0 = no limit
  GoodputOptions goodput;  // attainment copied from `attainment`
};

// Strict: unknown keys, wrong types, empty lists, unknown GPU names and bad
// ranges are InputErrors naming the file and JSON path.
PlanSpec load_plan(const std::string& path, const std::string& data_dir);

struct PoolChoice {
  std::string gpu;
  int tp = 1;
  int instances = 1;
};

struct Candidate {
  std::size_t index = 0;  // enumeration order
  PoolChoice prefill, decode;
  int gpus = 0;
  double usd_per_hour = 0;
  enum class Status { kNotEvaluated, kPass, kFail, kSkipped };
  Status status = Status::kNotEvaluated;
  double attainment = 0;  // at target_rps (pass/fail only)
  std::string reason;     // skipped: why
};

const char* status_name(Candidate::Status status);

struct PlanResult {
  std::vector<Candidate> candidates;  // in search order, up to and including the answer
  std::size_t candidates_total = 0;   // the whole search space (after max_total_gpus)
  std::optional<std::size_t> best;    // position in `candidates`
  std::optional<GoodputResult> best_goodput;
  std::string message;
};

// REQUIRES: jobs >= 1. Deterministic and independent of jobs.
PlanResult run_plan(const PlanSpec& plan, const LoadOptions& load, int jobs);

}  // namespace pdsim
