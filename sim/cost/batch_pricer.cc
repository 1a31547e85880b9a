#include "sim/cost/batch_pricer.h"

namespace pdsim {

BatchPricer::BatchPricer(const CostModel& cost, const ModelSpec& model, const Parallelism& par)
    : cost_(cost), model_(model), par_(par), per_op_(cost.batch_is_sum_of_op_prices()) {}

void BatchPricer::price_shape(const BatchStats& batch, Shape& shape) {
  build_ops(model_, par_, batch, ops_);
  shape.prices.reserve(ops_.size());
  for (std::size_t i = 0; i < ops_.size(); ++i) {
    if (ops_[i].op_class == OpClass::kAttentionPrefill) shape.prefill_attention = i;
    if (ops_[i].op_class == OpClass::kAttentionDecode) shape.decode_attention = i;
    shape.prices.push_back(cost_.price(ops_[i]).time_s);
  }
}

// What fixes a batch's ops but attention: tokens, logit rows (<= sequences
// <= tokens) and which attention ops it has. A shape whose numbers do not fit
// the packing gets key 0, which no packed shape has (tokens >= 1), and is
// priced in full.
std::uint64_t BatchPricer::key_of(const BatchStats& b) {
  const auto tokens = static_cast<std::uint64_t>(b.new_tokens), rows = static_cast<std::uint64_t>(b.logit_rows);
  if (b.new_tokens < 1 || b.logit_rows < 0 || tokens >= (1ull << 31) || rows >= (1ull << 31)) return 0;
  return tokens << 33 | rows << 2 | (b.prefill_seqs > 0 ? 2u : 0u) | (b.decode_seqs > 0 ? 1u : 0u);
}

double BatchPricer::seconds(const BatchStats& batch) {
  const Shape* shape = nullptr;
  if (per_op_ && batch.new_tokens > 0) {
    const bool decode_only = batch.prefill_seqs == 0 && batch.new_tokens == batch.decode_seqs &&
                             batch.logit_rows == batch.decode_seqs;
    if (decode_only) {
      const auto n = static_cast<std::size_t>(batch.decode_seqs);
      if (n >= decode_steps_.size()) decode_steps_.resize(n + 1);
      if (decode_steps_[n].prices.empty()) price_shape(batch, decode_steps_[n]);
      shape = &decode_steps_[n];
    } else if (const std::uint64_t key = key_of(batch); key != 0) {
      if (auto it = shapes_.find(key); it != shapes_.end()) {
        shape = &it->second;
      } else if (shapes_.size() < kMaxShapes) {
        Shape& added = shapes_[key];
        price_shape(batch, added);
        shape = &added;
      }
    }
  }
  if (shape == nullptr) {
    build_ops(model_, par_, batch, ops_);
    return cost_.batch_time_s(model_, par_, batch, ops_);
  }
  // The same additions, in the same order, as CostModel::total_s.
  double t = 0;
  for (std::size_t i = 0; i < shape->prices.size(); ++i) {
    if (i == shape->prefill_attention)
      t += cost_.price(prefill_attention_op(model_, par_, batch)).time_s;
    else if (i == shape->decode_attention)
      t += cost_.price(decode_attention_op(model_, par_, batch)).time_s;
    else
      t += shape->prices[i];
  }
  return t;
}

}  // namespace pdsim
