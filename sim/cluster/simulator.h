// The event-driven cluster simulator: request arrival, prefill batching, KV
// transfer, decode continuous batching (disaggregated), or both phases on one
// pool (colocated, prefill-priority or chunked).
//
// Memory model: KV blocks of `block_tokens`. A decode (or colocated) instance
// reserves blocks for prompt + all output tokens when it admits a request, so
// it never has to preempt; a request that does not fit waits (FCFS) holding
// its prefill instance's blocks, and a prefill instance whose blocks are all
// held stops admitting (DistServe's pull model).
//
// KV transfer: each prefill instance has one egress link of `bandwidth_gbps`;
// concurrent transfers share it equally (processor sharing) and each pays
// `latency_us` once. With `layerwise`, the decode instance is picked when the
// prefill starts and the KV streams from when it has reserved memory, while
// the prefill computes: a flow cannot send KV not yet produced (fluid, one
// layer behind the prefill), and the bandwidth it leaves goes to the others.
//
// One Simulator is one run; it owns its event queue, RNG-free state and
// metrics, so independent runs can proceed in parallel threads.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sim/config/scenario.h"
#include "sim/cost/cost_model.h"
#include "sim/metrics/metrics.h"
#include "sim/workload/workload.h"

namespace pdsim {

struct PoolStats {
  int instances = 0;
  int gpus = 0;
  std::int64_t kv_capacity_tokens = 0;  // per instance
  double busy_s = 0;                    // summed over instances
  std::int64_t batches = 0;             // prefill batches or iterations
  std::int64_t batch_requests = 0;      // summed batch sizes (requests)
  std::int64_t batch_tokens = 0;        // summed new tokens per batch
  double kv_peak_fraction = 0;          // max over instances of used/capacity
  // Time integral of KV used/capacity (seconds), summed over instances; the
  // summary averages it over its window as it does busy_s.
  double kv_fraction_s = 0;
};

// Where a real-kernel run's times came from (cost_model "real" only).
struct RealKernelStats {
  bool present = false;
  std::string backend, device;
  std::string layers;                 // "one" (one layer x L), "all", "mixed", "" (none executed)
  std::int64_t batches_measured = 0;  // executed on the backend
  std::int64_t batches_memoized = 0;  // reused within the run (memo)
  std::int64_t batches_replayed = 0;  // read from the timings file
};

struct SimResult {
  std::vector<RequestRecord> records;  // index = request id
  GapHistogram tbt;
  PoolStats prefill, decode, colocated;  // only the mode's pools are filled
  double kv_bytes_moved = 0;
  SimTime end_time = 0;  // last event
  std::uint64_t events = 0;
  RealKernelStats real_kernel;
};

// One batch as it starts: a prefill batch, a decode step or a colocated iteration.
struct BatchRecord {
  const char* pool = "";  // "prefill" | "decode" | "colocated"
  int instance = 0;       // index within its pool
  SimTime start = 0;
  SimTime duration = 0;   // as the cost model priced it
  BatchStats stats;       // the shape the cost model priced, every sequence listed (stats.seqs)
};

struct SimOptions {
  // Called now and then with the fraction of requests finished (for progress bars).
  std::function<void(double)> progress;
  // Called for every batch, in start order (pdsim validate prices the real
  // run's batches again with the other models; pdsim run --batch-log).
  // Setting it makes every batch list its sequences (O(batch) per decode step).
  std::function<void(const BatchRecord&)> on_batch;
};

// Builds the cost model named by scenario.cost_model for one pool; `real`
// overrides scenario.real_kernel (a run shares one opened timings file).
std::unique_ptr<CostModel> make_cost_model(const Scenario& scenario, const PoolConfig& pool,
                                           const RealKernelOptions* real = nullptr);

// Runs the scenario to completion. Throws InputError if a request can never
// fit (e.g. longer than the KV capacity), InternalError on a broken invariant.
SimResult simulate(const Scenario& scenario, const std::vector<RequestSpec>& requests,
                   const SimOptions& options = {});

}  // namespace pdsim
