// The simulator's price of a batch: CostModel::batch_time_s over build_ops,
// with a shortcut for the decode step, the simulator's most frequent batch.
// In a decode-only batch every op but decode attention depends on the batch
// size alone, so their prices are kept per batch size and a step builds and
// prices its attention op only. The sum runs in build_ops' order: the result
// is bit-identical to batch_time_s over build_ops (tests/test_batch_pricer.cc).
#pragma once
#include <cstddef>
#include <vector>

#include "sim/cost/cost_model.h"

namespace pdsim {

class BatchPricer {
 public:
  // `cost` and `model` must outlive the pricer.
  BatchPricer(const CostModel& cost, const ModelSpec& model, const Parallelism& par);
  double seconds(const BatchStats& batch);

 private:
  struct DecodeStep {
    std::vector<double> prices;  // per op of build_ops, in order; the attention slot unused
    std::size_t attention = 0;   // index of the decode attention op
  };
  const DecodeStep& decode_step(const BatchStats& batch);

  const CostModel& cost_;
  const ModelSpec& model_;
  Parallelism par_;
  bool per_op_;                      // cost_.batch_is_sum_of_op_prices()
  std::vector<Op> ops_;              // scratch for build_ops
  std::vector<DecodeStep> by_size_;  // index: decode batch size; empty prices = not priced yet
};

}  // namespace pdsim
