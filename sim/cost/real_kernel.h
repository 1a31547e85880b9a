// Real-kernel cost model ("cost_model": "real"): a batch's time is measured
// by running it on a compute backend (kernels/backend.h: the CUDA backend
// when this build has one and a GPU is visible, else the CPU backend) with
// kernels::LayerExecutor: one decoder layer timed op by op, times the layer
// count (or, with real_kernel.layers "all"/"auto", every layer run in turn),
// plus the LM head GEMM. Ops the executor does not run (embedding,
// TP all-reduce, PP hand-off) are priced by the roofline of the pool's GPU
// profile (source "roofline").
//
// Batch mapping: every sequence of the batch (BatchStats::seqs) runs at its
// own length, in ascending order: a prefill sequence's new tokens after its
// cached prefix (a later chunk of a chunked prefill: its queries attend to
// the prefix and to each other), a decode sequence's whole context. GEMM
// rows, attention pairs, KV tokens and each decode sequence's context are
// exact.
//
// Dependency direction: sim/ depends on the kernels library's interface
// (kernels/backend.h, kernels/layer_executor.h) and never on CUDA headers;
// the CUDA backend is reached only through kernels::make_cuda_backend.
//
// Timings are measurements: two runs of a scenario differ by the machine's
// noise, unless both use one timings file (sim/cost/real_timings.h), whose
// replay makes the second byte-identical to the first.
// memo: reuse the measured time of an identical batch shape (same sequence
// lengths, in any order).
// timings (options.timings): look each batch shape up in a timings file
// first and add what was measured (memo implied; sim/cost/real_timings.h).
#pragma once
#include <map>
#include <memory>
#include <string>

#include "sim/cost/cost_model.h"
#include "sim/cost/real_kernel_options.h"
#include "sim/cost/real_timings.h"

namespace pdsim::kernels {
class Backend;
class LayerExecutor;
struct LayerBatch;
struct LayerDims;
}  // namespace pdsim::kernels

namespace pdsim {

class RealKernelCostModel : public CostModel {
 public:
  // Throws InputError naming `where` when the backend cannot be made
  // (backend "cuda" without a device) or the model cannot be run.
  RealKernelCostModel(const GpuSpec& gpu, const ModelSpec& model, const RealKernelOptions& options,
                      const std::string& where);
  ~RealKernelCostModel() override;
  std::string name() const override { return "real"; }
  // One op out of its batch cannot be measured: the roofline price (source "roofline").
  OpPrice price(const Op& op) const override;
  double batch_time_s(const ModelSpec& model, const Parallelism& par, const BatchStats& batch,
                      const std::vector<Op>& ops) const override;
  CostBreakdown batch_breakdown(const ModelSpec& model, const Parallelism& par, const BatchStats& batch,
                                const std::vector<Op>& ops) const override;
  bool needs_sequences() const override { return true; }
  bool batch_is_sum_of_op_prices() const override { return false; }

  std::string backend_name() const;
  std::string device() const;
  // How the executors ran the model: "one" (one layer x L), "all", "mixed"
  // (differs by tp), "" (nothing executed, e.g. every batch replayed).
  std::string layers_run() const;
  std::int64_t batches_measured() const { return measured_; }
  std::int64_t batches_memoized() const { return memo_hits_; }

  // The executor's batch for `batch` (the mapping above).
  static kernels::LayerBatch map_batch(const BatchStats& batch);

 private:
  using Measured = RealBatchTiming;
  const Measured& measure(RealBatchKey key) const;
  // options.layers resolved for one TP shard: "all" unless the weights of
  // every layer do not fit (InputError), "auto" by half the free memory.
  bool run_all_layers(const kernels::LayerDims& dims) const;

  RooflineCostModel roofline_;
  RealKernelOptions options_;
  ModelSpec model_;
  std::string where_;
  std::unique_ptr<kernels::Backend> backend_;
  mutable std::map<int, std::unique_ptr<kernels::LayerExecutor>> executors_;  // by tp
  mutable std::map<RealBatchKey, Measured> memo_;
  mutable Measured last_;
  mutable std::int64_t measured_ = 0, memo_hits_ = 0;
};

}  // namespace pdsim
