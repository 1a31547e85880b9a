// CostModel: prices the ops of one batch on one instance's GPU type.
// Every implementation (roofline now; profiled and real-kernel later) returns
// a per-op breakdown so any time pdsim prints can be explained.
#pragma once
#include <string>
#include <vector>

#include "sim/hw/gpu_spec.h"
#include "sim/model/ops.h"

namespace pdsim {

struct OpPrice {
  double time_s = 0;        // for all `count` instances of the op
  const char* bound = "";   // "compute" | "memory" | "link" | "overhead"
  const char* source = "";  // "roofline" | "measured" | "interpolated" | "roofline-fallback" | "real"
};

struct PricedOp {
  Op op;
  OpPrice price;
};

struct CostBreakdown {
  std::vector<PricedOp> ops;
  double total_s = 0;
};

class CostModel {
 public:
  virtual ~CostModel() = default;
  virtual std::string name() const = 0;
  virtual OpPrice price(const Op& op) const = 0;

  // Sum of op prices: the batch's latency on the instance.
  double total_s(const std::vector<Op>& ops) const {
    double t = 0;
    for (const auto& op : ops) t += price(op).time_s;
    return t;
  }
  CostBreakdown breakdown(const std::vector<Op>& ops) const {
    CostBreakdown out;
    for (const auto& op : ops) {
      out.ops.push_back({op, price(op)});
      out.total_s += out.ops.back().price.time_s;
    }
    return out;
  }

  // Batch-level hooks, for models that price a whole batch at once (the
  // real-kernel model runs it). `ops` is build_ops(model, par, batch).
  // Defaults: the per-op sums above. A model that measures or memoizes here
  // keeps that state mutable: one CostModel is used by one thread at a time
  // (each simulation owns its cost models).
  virtual double batch_time_s(const ModelSpec& model, const Parallelism& par, const BatchStats& batch,
                              const std::vector<Op>& ops) const {
    (void)model, (void)par, (void)batch;
    return total_s(ops);
  }
  virtual CostBreakdown batch_breakdown(const ModelSpec& model, const Parallelism& par, const BatchStats& batch,
                                        const std::vector<Op>& ops) const {
    (void)model, (void)par, (void)batch;
    return breakdown(ops);
  }
  // Whether batch_time_s is total_s(ops) and price(op) a pure function of
  // the op (BatchPricer then keeps prices of ops that recur); false for a
  // model that overrides batch_time_s or keeps state across prices.
  virtual bool batch_is_sum_of_op_prices() const { return true; }
  // Whether the hooks above read BatchStats::seqs (each sequence's shape),
  // not the aggregates alone.
  virtual bool needs_sequences() const { return false; }
};

// Roofline: time = max(FLOPs / (peak x eff), bytes / (HBM x eff)) + launches x
// overhead; collectives use the ring all-reduce volume over the intra-node link.
// When the GPU profile has a "calibrated" object (factors fitted to measured
// kernel tables), GEMM, prefill/decode attention, all-reduce and, when
// fitted, elementwise ops use its per-class factors (sim/cost/calibration.h)
// instead of the datasheet assumptions; P2P always uses the latter.
class RooflineCostModel : public CostModel {
 public:
  // compute_bytes selects the peak (2: bf16, 1: fp8); `where` names the config for errors.
  // use_calibration = false keeps the uncalibrated (datasheet-assumption) factors.
  RooflineCostModel(const GpuSpec& gpu, int compute_bytes, const std::string& where, bool use_calibration = true);
  std::string name() const override { return "roofline"; }
  OpPrice price(const Op& op) const override;
  bool calibrated() const { return calibrated_; }

 private:
  GpuSpec gpu_;
  double peak_flops_;
  double fp32_flops_;
  bool calibrated_;
};

}  // namespace pdsim
