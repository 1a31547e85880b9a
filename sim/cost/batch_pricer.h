// The simulator's price of a batch: CostModel::batch_time_s over build_ops,
// without re-pricing what recurs. Every op but the two attention ops depends
// on the batch's token count and logit rows alone (a decode step of n
// sequences, a chunked step filling its token budget), so their prices are
// kept per such shape and a batch builds and prices its attention ops only.
// The sum runs in build_ops' order: the result is bit-identical to
// batch_time_s over build_ops (tests/test_batch_pricer.cc).
#pragma once
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "sim/cost/cost_model.h"

namespace pdsim {

class BatchPricer {
 public:
  // `cost` and `model` must outlive the pricer. Cost models that price a
  // batch as a whole (batch_is_sum_of_op_prices() false) take the full path.
  BatchPricer(const CostModel& cost, const ModelSpec& model, const Parallelism& par);
  double seconds(const BatchStats& batch);

  // Shapes kept at the most (each ~15 doubles); past it, new shapes are priced in full.
  static constexpr std::size_t kMaxShapes = 1 << 16;

 private:
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  // A shape's op prices, in build_ops' order; the attention slots are re-priced per batch.
  struct Shape {
    std::vector<double> prices;
    std::size_t prefill_attention = kNone, decode_attention = kNone;
  };
  // Prices a new shape from `batch` into `shape`.
  void price_shape(const BatchStats& batch, Shape& shape);
  static std::uint64_t key_of(const BatchStats& batch);

  const CostModel& cost_;
  const ModelSpec& model_;
  Parallelism par_;
  bool per_op_;                         // cost_.batch_is_sum_of_op_prices()
  std::vector<Op> ops_;                 // scratch for build_ops
  std::vector<Shape> decode_steps_;     // decode-only batches, by sequence count (the common case: no hashing)
  std::unordered_map<std::uint64_t, Shape> shapes_;  // every other batch, by key_of
};

}  // namespace pdsim
