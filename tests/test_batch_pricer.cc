// BatchPricer: the simulator's batch prices, with the recurring ops' prices
// kept per shape (tokens, logit rows), must equal CostModel::batch_time_s over
// build_ops bit for bit (the simulator's times, and so its outputs, must not
// depend on the shortcut). Checked on four model x GPU x parallelism cases,
// roofline and profiled, for decode steps, prefills and chunked mixed steps
// whose shapes recur with other contexts.
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
      // Chunked steps filling a 512-token budget: n decodes and one chunk of
      // 512 - n tokens after a random prefix, emitting a token or not; the
      // same (tokens, logit rows) recur with other contexts and prefixes.
      std::uniform_int_distribution<int> decodes(0, 40), prefix(0, 5000);
      for (int step = 0; step < 300; ++step) {
        const int n = decodes(rng);
        BatchStats b = decode_batch(rng, n);
        b.add({512 - n, prefix(rng)}, step % 3 == 0);
        CAPTURE(n);
        CHECK(pricer.seconds(b) == full_price(*cost, model, c.par, b));
      }
      // Prefill batches, and a one-token chunk that emits no token (counted as
      // a decode sequence, but not a decode step: logit rows differ).
      for (int step = 0; step < 50; ++step) {
        BatchStats b;
        b.keep_seqs = false;
        for (int i = 0; i < 1 + step % 4; ++i) b.add({100 + step % 5, 0});
        CHECK(pricer.seconds(b) == full_price(*cost, model, c.par, b));
      }
      BatchStats silent_chunk = decode_batch(rng, 5);
      silent_chunk.add({1, 900}, false);
      CHECK(pricer.seconds(silent_chunk) == full_price(*cost, model, c.par, silent_chunk));
      CHECK(pricer.seconds(silent_chunk) != pricer.seconds(decode_batch(rng, 6)));
    }
}

TEST_CASE("batch pricer: only the attention ops of a batch read its sequences' contexts and split") {
  // What the pricer's shortcut rests on, checked op by op: two batches of
  // equal tokens and logit rows, with other contexts and another split of
  // the tokens over prompts and decodes, differ in their attention ops only.
  ModelCatalog models;
  models.load_file(std::string(PDSIM_SOURCE_DIR) + "/profiles/models.json");
  for (const char* name : {"llama-3.1-8b", "opt-13b", "tiny-llama-512"}) {
    CAPTURE(std::string(name));
    const ModelSpec& model = models.get(name, "test");
    std::vector<Op> short_ctx, long_ctx;
    BatchStats a, b;
    for (int i = 0; i < 9; ++i) a.add({1, 10 + i}), b.add({1, 20000 + 7 * i});
    a.add({300, 0}), a.add({200, 40});
    b.add({100, 9000}), b.add({400, 0});
    build_ops(model, {2, 2}, a, short_ctx);
    build_ops(model, {2, 2}, b, long_ctx);
    REQUIRE(short_ctx.size() == long_ctx.size());
    int differing = 0;
    for (std::size_t i = 0; i < short_ctx.size(); ++i) {
      const Op &x = short_ctx[i], &y = long_ctx[i];
      CHECK(x.op_class == y.op_class);
      const bool same = x.flops == y.flops && x.bytes == y.bytes && x.count == y.count && x.kernels == y.kernels &&
                        x.m == y.m && x.n == y.n && x.k == y.k && x.seqs == y.seqs && x.pairs == y.pairs &&
                        x.kv_tokens == y.kv_tokens;
      if (!same) {
        ++differing;
        CHECK((x.op_class == OpClass::kAttentionDecode || x.op_class == OpClass::kAttentionPrefill));
      }
    }
    CHECK(differing == 2);
    // The attention ops alone are the ones build_ops emits.
    const Op prefill = prefill_attention_op(model, {2, 2}, b), decode = decode_attention_op(model, {2, 2}, b);
    for (const Op& op : long_ctx)
      for (const Op* alone : {&prefill, &decode})
        if (op.op_class == alone->op_class) {
          CHECK(op.flops == alone->flops);
          CHECK(op.bytes == alone->bytes);
          CHECK(op.count == alone->count);
          CHECK(op.m == alone->m);
          CHECK(op.seqs == alone->seqs);
          CHECK(op.pairs == alone->pairs);
          CHECK(op.kv_tokens == alone->kv_tokens);
        }
  }
}
