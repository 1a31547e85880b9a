// A scenario: model, workload, cluster, cost model and SLOs, fully validated.
// load_scenario() is the only place scenario JSON is interpreted; everything
// downstream sees typed, range-checked values.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/cost/real_kernel_options.h"
#include "sim/hw/gpu_spec.h"
#include "sim/model/model_spec.h"
#include "sim/model/ops.h"
#include "sim/workload/workload.h"

namespace pdsim {

enum class Mode { kDisaggregated, kColocated };
enum class ColocatedPolicy { kPrefillPriority, kChunked };
enum class RouterKind { kRoundRobin, kLeastLoaded };

struct PoolConfig {
  std::string json_path;  // e.g. "$.cluster.prefill", for messages
  GpuSpec gpu;
  int instances = 1;
  Parallelism par;
  std::int64_t max_batch_tokens = 8192;   // prefill / colocated prefill budget
  std::int64_t max_batch_requests = 256;  // prefill
  std::int64_t max_batch_size = 256;      // decode / colocated running requests
  double memory_utilization = 0.9;        // fraction of GPU memory for weights + KV
  std::int64_t block_tokens = 16;
  RouterKind router = RouterKind::kRoundRobin;  // picks this pool's instance for each request
  ColocatedPolicy policy = ColocatedPolicy::kPrefillPriority;
  std::int64_t chunk_tokens = 512;

  int gpus() const { return instances * par.tp * par.pp; }
};

struct KvTransferConfig {
  double bandwidth_gbps = 400;  // gigabits/s per prefill instance's egress link
  double latency_us = 5;
  bool layerwise = false;
};

struct SloConfig {
  double ttft_s = 0;
  double ttft_percentile = 90;
  double tpot_s = 0;
  double tpot_percentile = 90;
};

struct Scenario {
  std::string file;
  std::string name;
  std::uint64_t seed = 1;
  ModelSpec model;
  WorkloadConfig workload;
  Mode mode = Mode::kDisaggregated;
  PoolConfig prefill, decode, colocated;
  KvTransferConfig kv_transfer;
  RouterKind router = RouterKind::kRoundRobin;  // cluster-wide default; pools may override
  std::string cost_model = "roofline";
  RealKernelOptions real_kernel;  // "real_kernel": options of cost_model "real"
  std::string data_dir;  // LoadOptions.data_dir: profiles/ for the cost model
  SloConfig slo;
  nlohmann::json resolved;  // the scenario JSON after --set overrides

  // The pool of a role as batch records and summaries name it: "prefill", "decode", else colocated.
  const PoolConfig& pool(const std::string& role) const {
    return role == "prefill" ? prefill : role == "decode" ? decode : colocated;
  }

  int total_gpus() const {
    return mode == Mode::kColocated ? colocated.gpus() : prefill.gpus() + decode.gpus();
  }
};

struct LoadOptions {
  std::string data_dir;                // holds profiles/models.json and profiles/gpus/
  std::vector<std::string> overrides;  // "--set path=value"
  std::int64_t seed_override = -1;     // >= 0 replaces "seed"
};

Scenario load_scenario(const std::string& path, const LoadOptions& options);
// Same, from an already-parsed document; `file` names it in messages and
// anchors relative paths.
Scenario parse_scenario(nlohmann::json doc, const std::string& file, const LoadOptions& options);

// The directory compiled in (source tree), unless PDSIM_DATA_DIR is set.
std::string default_data_dir();

// KV capacity in tokens of one instance, after weights. Throws InputError if
// the model does not fit.
std::int64_t kv_capacity_tokens(const ModelSpec& model, const PoolConfig& pool, const std::string& file);

}  // namespace pdsim
