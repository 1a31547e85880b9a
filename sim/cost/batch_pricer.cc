#include "sim/cost/batch_pricer.h"

#include "sim/core/error.h"

namespace pdsim {

BatchPricer::BatchPricer(const CostModel& cost, const ModelSpec& model, const Parallelism& par)
    : cost_(cost), model_(model), par_(par), per_op_(cost.batch_is_sum_of_op_prices()) {}

const BatchPricer::DecodeStep& BatchPricer::decode_step(const BatchStats& batch) {
  const auto n = static_cast<std::size_t>(batch.decode_seqs);
  if (n >= by_size_.size()) by_size_.resize(n + 1);
  DecodeStep& step = by_size_[n];
  if (!step.prices.empty()) return step;
  build_ops(model_, par_, batch, ops_);
  step.prices.reserve(ops_.size());
  bool found = false;
  for (std::size_t i = 0; i < ops_.size(); ++i) {
    if (ops_[i].op_class == OpClass::kAttentionDecode) step.attention = i, found = true;
    step.prices.push_back(cost_.price(ops_[i]).time_s);
  }
  PDSIM_CHECK(found, "a decode batch without a decode attention op");
  return step;
}

double BatchPricer::seconds(const BatchStats& batch) {
  const bool decode_only = batch.decode_seqs > 0 && batch.prefill_seqs == 0 &&
                           batch.new_tokens == batch.decode_seqs && batch.logit_rows == batch.decode_seqs;
  if (!per_op_ || !decode_only) {
    build_ops(model_, par_, batch, ops_);
    return cost_.batch_time_s(model_, par_, batch, ops_);
  }
  const DecodeStep& step = decode_step(batch);
  // The same additions, in the same order, as CostModel::total_s.
  double t = 0;
  for (std::size_t i = 0; i < step.prices.size(); ++i)
    t += i == step.attention ? cost_.price(decode_attention_op(model_, par_, batch)).time_s : step.prices[i];
  return t;
}

}  // namespace pdsim
