// BatchPricer: the simulator's batch prices, with decode steps' recurring op
// prices kept per batch size, must equal CostModel::batch_time_s over
// build_ops bit for bit (the simulator's times, and so its outputs, must not
// depend on the shortcut). Checked on every catalog model shape the shipped
// profiles price, with TP and PP, for decode-only and mixed batches.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>

#include "sim/cost/batch_pricer.h"
#include "sim/cost/factory.h"
#include "sim/model/model_spec.h"
#include "sim/model/ops.h"

using namespace pdsim;

namespace {

BatchStats decode_batch(std::mt19937_64& rng, int n) {
  std::uniform_int_distribution<std::int64_t> context(0, 30000);
  BatchStats b;
  b.keep_seqs = false;
  for (int i = 0; i < n; ++i) b.add({1, context(rng)});
  return b;
}

double full_price(const CostModel& cost, const ModelSpec& model, const Parallelism& par, const BatchStats& b) {
  std::vector<Op> ops;
  build_ops(model, par, b, ops);
  return cost.batch_time_s(model, par, b, ops);
}

}  // namespace

TEST_CASE("batch pricer: every batch's price is bit-identical to batch_time_s over build_ops") {
  GpuCatalog gpus(std::string(PDSIM_SOURCE_DIR) + "/profiles/gpus");
  ModelCatalog models;
  models.load_file(std::string(PDSIM_SOURCE_DIR) + "/profiles/models.json");
  struct Case {
    const char* model;
    const char* gpu;
    Parallelism par;
  };
  for (const std::string cost_name : {"roofline", "profiled"})
    for (const Case c : {Case{"llama-3.1-8b", "h100-sxm", {1, 1}}, Case{"llama-2-70b", "a100-sxm-80g", {4, 2}},
                         Case{"opt-13b", "l40s", {2, 1}}, Case{"tiny-llama-512", "host-cpu", {1, 1}}}) {
      CAPTURE(cost_name);
      CAPTURE(std::string(c.model));
      const ModelSpec& model = models.get(c.model, "test");
      const auto cost = make_cost_model(cost_name, gpus.get(c.gpu, "test"), model, "test", PDSIM_SOURCE_DIR);
      BatchPricer pricer(*cost, model, c.par);
      std::mt19937_64 rng(11);
      // Sizes revisited in random order: the kept prices are reused across
      // contexts, and a size priced before is not priced from a stale entry.
      std::uniform_int_distribution<int> size(1, 300);
      for (int step = 0; step < 400; ++step) {
        const BatchStats b = decode_batch(rng, step < 300 ? size(rng) : 1 + step % 7);
        CAPTURE(b.decode_seqs);
        CHECK(pricer.seconds(b) == full_price(*cost, model, c.par, b));
      }
      // Not decode-only (a prompt, a chunk that emits no token): the full path.
      BatchStats mixed = decode_batch(rng, 5);
      mixed.add({700, 300}, true);
      CHECK(pricer.seconds(mixed) == full_price(*cost, model, c.par, mixed));
      BatchStats silent_chunk = decode_batch(rng, 5);
      silent_chunk.add({1, 900}, false);
      CHECK(pricer.seconds(silent_chunk) == full_price(*cost, model, c.par, silent_chunk));
      CHECK(pricer.seconds(silent_chunk) != pricer.seconds(decode_batch(rng, 6)));
    }
}

TEST_CASE("batch pricer: decode attention is the only op of a decode step that reads the context") {
  // What the pricer's shortcut rests on, checked op by op.
  ModelCatalog models;
  models.load_file(std::string(PDSIM_SOURCE_DIR) + "/profiles/models.json");
  for (const char* name : {"llama-3.1-8b", "opt-13b", "tiny-llama-512"}) {
    CAPTURE(std::string(name));
    const ModelSpec& model = models.get(name, "test");
    std::vector<Op> short_ctx, long_ctx;
    BatchStats a, b;
    for (int i = 0; i < 9; ++i) a.add({1, 10 + i}), b.add({1, 20000 + 7 * i});
    build_ops(model, {2, 2}, a, short_ctx);
    build_ops(model, {2, 2}, b, long_ctx);
    REQUIRE(short_ctx.size() == long_ctx.size());
    int differing = 0;
    for (std::size_t i = 0; i < short_ctx.size(); ++i) {
      const bool same = short_ctx[i].flops == long_ctx[i].flops && short_ctx[i].bytes == long_ctx[i].bytes &&
                        short_ctx[i].kv_tokens == long_ctx[i].kv_tokens;
      if (!same) {
        ++differing;
        CHECK(short_ctx[i].op_class == OpClass::kAttentionDecode);
      }
    }
    CHECK(differing == 1);
    const Op alone = decode_attention_op(model, {2, 2}, b);
    for (const Op& op : long_ctx)
      if (op.op_class == OpClass::kAttentionDecode) {
        CHECK(op.flops == alone.flops);
        CHECK(op.bytes == alone.bytes);
        CHECK(op.count == alone.count);
        CHECK(op.kv_tokens == alone.kv_tokens);
      }
  }
}
