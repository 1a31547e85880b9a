// The layer executor (kernels/layer_executor.h) and the real-kernel cost
// model (sim/cost/real_kernel.h) on the CPU backend.
#include <algorithm>
#include <cmath>
#include <memory>
#include <new>
#include <set>

#include <doctest/doctest.h>

#include "kernels/backend.h"
#include "kernels/layer_executor.h"
#include "sim/core/error.h"
#include "sim/cost/factory.h"
#include "sim/cost/real_kernel.h"
#include "test_util.h"

namespace k = pdsim::kernels;
using namespace pdsim;

namespace {
k::LayerDims tiny_dims() {
  k::LayerDims d;
  d.model = "t";
  d.layers = 3;
  d.hidden = 128;
  d.heads = 4;
  d.kv_heads = 2;
  d.head_dim = 32;
  d.ffn = 256;
  d.vocab = 1000;
  return d;
}
std::set<std::string> names(const k::LayerTiming& t) {
  std::set<std::string> s;
  for (const auto& o : t.ops) s.insert(o.name);
  return s;
}
const ModelSpec& catalog_model(const std::string& name) {
  static ModelCatalog c = [] {
    ModelCatalog cat;
    cat.load_file(std::string(PDSIM_SOURCE_DIR) + "/profiles/models.json");
    return cat;
  }();
  return c.get(name, "test");
}
}  // namespace

TEST_CASE("layer executor: reports the ops of sim/model/ops.cc for prefill decode and mixed batches") {
  auto b = k::make_cpu_backend(1);
  k::LayerExecutor ex(*b, tiny_dims(), {0, 1, 16});
  const std::set<std::string> common = {"qkv_proj", "kv_append_rope", "o_proj",  "mlp_gate_up",
                                        "mlp_silu_mul", "mlp_down",    "norms_residual"};
  auto with = [&](std::initializer_list<const char*> extra) {
    auto s = common;
    for (auto e : extra) s.insert(e);
    return s;
  };
  const auto pre = ex.run({{17, 40, 3}, {}, 3});
  CHECK(names(pre) == with({"attention_prefill"}));
  const auto dec = ex.run({{}, {1, 16, 17, 100}, 4});
  CHECK(names(dec) == with({"attention_decode"}));
  const auto mix = ex.run({{33}, {5, 70}, 3});
  CHECK(names(mix) == with({"attention_prefill", "attention_decode"}));
  for (const auto* t : {&pre, &dec, &mix}) {
    for (const auto& o : t->ops) CHECK(o.time_s > 0);
    CHECK(t->lm_head_s > 0);
    CHECK(t->model_s() == doctest::Approx(3 * t->layer_s() + t->lm_head_s));
  }
  const auto no_logits = ex.run({{}, {8}, 0});
  CHECK(no_logits.lm_head_s == 0);
}

namespace {
// Forwards to the CPU backend and records which buffers each call touched, so
// a test can see what the executor ran (buffers are plain host memory here).
class RecordingBackend final : public k::Backend {
 public:
  struct Call {
    std::string op;
    const void* a = nullptr;  // gemm: weight; kv_append/decode: K cache; rmsnorm: input
    const void* out = nullptr;
    std::int64_t col0 = 0, cols = 0;  // copy_columns
    const void* residual = nullptr;   // rmsnorm: the residual stream it adds into
    std::vector<std::int32_t> ints;   // kv_append: slots; prefill_attention: cu_seqlens_k; rope: positions
    int block_tokens = 0;             // kv_append
  };
  std::vector<Call> calls;

  std::string name() const override { return inner_->name(); }
  std::string device() const override { return inner_->device(); }
  k::DType compute_dtype() const override { return inner_->compute_dtype(); }
  double free_memory_bytes() const override { return inner_->free_memory_bytes(); }
  void upload(k::Tensor& dst, const float* src) override { inner_->upload(dst, src); }
  void upload_i32(k::Tensor& dst, const std::int32_t* src) override { inner_->upload_i32(dst, src); }
  void download(const k::Tensor& src, float* dst) override { inner_->download(src, dst); }
  void gemm(const k::GemmArgs& a) override {
    calls.push_back({"gemm", a.w->data(), a.y->data()});
    inner_->gemm(a);
  }
  void prefill_attention(const k::PrefillAttentionArgs& a) override {
    Call c{"prefill_attention", a.k->data(), a.out->data()};
    if (a.cu_seqlens_k) c.ints = host_ints(*a.cu_seqlens_k, a.num_seqs + 1);
    calls.push_back(std::move(c));
    inner_->prefill_attention(a);
  }
  void decode_attention(const k::DecodeAttentionArgs& a) override {
    calls.push_back({"decode_attention", a.k_cache->data(), a.out->data()});
    inner_->decode_attention(a);
  }
  void kv_append(const k::KvAppendArgs& a) override {
    Call c{"kv_append", a.k_cache->data(), nullptr};
    c.ints = host_ints(*a.slot_mapping, a.tokens);
    c.block_tokens = a.block_tokens;
    calls.push_back(std::move(c));
    inner_->kv_append(a);
  }
  void rmsnorm(const k::RmsNormArgs& a) override {
    calls.push_back({"rmsnorm", a.x->data(), a.out->data(), 0, 0, a.residual ? a.residual->data() : nullptr});
    inner_->rmsnorm(a);
  }
  void rope(const k::RopeArgs& a) override {
    Call c{"rope"};
    c.ints = host_ints(*a.positions, a.tokens);
    calls.push_back(std::move(c));
    inner_->rope(a);
  }
  void silu_gate(const k::SiluGateArgs& a) override { inner_->silu_gate(a); }
  void copy(k::Tensor& dst, const k::Tensor& src) override { inner_->copy(dst, src); }
  void copy_columns(const k::CopyColumnsArgs& a) override {
    calls.push_back({"copy_columns", a.src->data(), a.dst->data(), a.col0, a.cols});
    inner_->copy_columns(a);
  }
  void synchronize() override { inner_->synchronize(); }
  void timer_start() override { inner_->timer_start(); }
  double timer_stop_s() override { return inner_->timer_stop_s(); }

 protected:
  void* raw_allocate(std::size_t bytes) override { return ::operator new(bytes, std::align_val_t(64)); }
  void raw_free(void* p) override { ::operator delete(p, std::align_val_t(64)); }

 private:
  // The first n int32 values of a tensor (host memory: the CPU backend's).
  static std::vector<std::int32_t> host_ints(const k::Tensor& t, std::int64_t n) {
    const auto* p = t.as<const std::int32_t>();
    return std::vector<std::int32_t>(p, p + n);
  }
  std::unique_ptr<k::Backend> inner_ = k::make_cpu_backend(1);
};

std::vector<RecordingBackend::Call> of(const std::vector<RecordingBackend::Call>& calls, const std::string& op) {
  std::vector<RecordingBackend::Call> out;
  for (const auto& c : calls)
    if (c.op == op) out.push_back(c);
  return out;
}
}  // namespace

TEST_CASE("layer executor: all-layers mode runs every layer on its own weights and KV cache in sequence") {
  RecordingBackend b;
  k::ExecutorOptions all{0, 1, 16};
  all.all_layers = true;
  k::LayerExecutor ex(b, tiny_dims(), all);  // 3 layers
  const auto t = ex.run({{}, {20, 33}, 2});
  CHECK(t.layers_run == 3);
  CHECK(t.model_s() == doctest::Approx(3 * t.layer_s() + t.lm_head_s));
  // Per layer: the fused qkv, o, gate_up, down GEMMs; then the lm_head once.
  const auto gemms = of(b.calls, "gemm");
  REQUIRE(gemms.size() == 3 * 4 + 1);
  std::set<const void*> qkv_weights, caches;
  for (int l = 0; l < 3; ++l) qkv_weights.insert(gemms[static_cast<std::size_t>(4 * l)].a);
  CHECK(qkv_weights.size() == 3);
  // q, k and v are the fused projection's column ranges [0, H hd), [H hd, (H + KH) hd), [(H + KH) hd, (H + 2 KH) hd).
  const auto splits = of(b.calls, "copy_columns");
  REQUIRE(splits.size() == 3 * 3);
  const auto d = tiny_dims();
  const std::int64_t qc = static_cast<std::int64_t>(d.heads) * d.head_dim, kc = static_cast<std::int64_t>(d.kv_heads) * d.head_dim;
  for (int l = 0; l < 3; ++l)
    for (int i = 0; i < 3; ++i) {
      const auto& s = splits[static_cast<std::size_t>(3 * l + i)];
      CHECK(s.a == gemms[static_cast<std::size_t>(4 * l)].out);
      CHECK(s.col0 == (i == 0 ? 0 : i == 1 ? qc : qc + kc));
      CHECK(s.cols == (i == 0 ? qc : kc));
    }
  const auto appends = of(b.calls, "kv_append"), reads = of(b.calls, "decode_attention");
  REQUIRE(appends.size() == 3);
  REQUIRE(reads.size() == 3);
  for (int l = 0; l < 3; ++l) {
    caches.insert(appends[static_cast<std::size_t>(l)].a);
    CHECK(reads[static_cast<std::size_t>(l)].a == appends[static_cast<std::size_t>(l)].a);  // reads what it appended
  }
  CHECK(caches.size() == 3);
  // Layer l + 1's input RMSNorm reads what layer l's down projection wrote.
  const auto norms = of(b.calls, "rmsnorm");
  REQUIRE(norms.size() == 3 * 2);
  for (int l = 0; l + 1 < 3; ++l)
    CHECK(norms[static_cast<std::size_t>(2 * (l + 1))].a == gemms[static_cast<std::size_t>(4 * l + 3)].out);
  // Every norm adds into one residual stream: the input norm the layer input,
  // the post-attention norm the o_proj output (the residual adds fused in).
  for (std::size_t i = 0; i < norms.size(); ++i) {
    CHECK(norms[i].residual != nullptr);
    CHECK(norms[i].residual == norms[0].residual);
    if (i % 2 == 1) CHECK(norms[i].a == gemms[4 * (i / 2) + 1].out);
  }

  // One-layer mode: one layer per run, one KV cache.
  RecordingBackend b1;
  k::LayerExecutor one(b1, tiny_dims(), {0, 1, 16});
  const auto t1 = one.run({{}, {20, 33}, 2});
  CHECK(t1.layers_run == 1);
  CHECK(of(b1.calls, "gemm").size() == 4 + 1);
  CHECK(of(b1.calls, "kv_append").size() == 1);
}

// A chunk after a cached prefix: its tokens sit at positions prefix + t (RoPE,
// paged KV slots), and prefill attention reads each sequence's keys as
// prefix then new tokens, the new ones copied there from this step's K.
TEST_CASE("layer executor: prefill sequences after a cached prefix run at their positions over prefix + new keys") {
  RecordingBackend b;
  const int bt = 16;
  k::LayerExecutor ex(b, tiny_dims(), {0, 1, bt});
  k::LayerBatch batch{{5, 20}, {40}, 3};
  batch.prefill_prefix = {30, 0};
  const auto t = ex.run(batch);
  CHECK(t.op_s("attention_prefill") > 0);
  const std::vector<int> lens = {5, 20}, prefix = {30, 0};
  const auto ropes = of(b.calls, "rope");
  REQUIRE(ropes.size() == 1);
  std::vector<std::int32_t> want_pos;
  for (std::size_t s = 0; s < lens.size(); ++s)
    for (int i = 0; i < lens[s]; ++i) want_pos.push_back(prefix[s] + i);
  want_pos.push_back(39);  // the decode sequence's new token
  CHECK(ropes[0].ints == want_pos);
  const auto appends = of(b.calls, "kv_append");
  REQUIRE(appends.size() == 2);  // the paged cache (timed), then the attention's key rows (untimed)
  const auto& paged = appends[0];
  CHECK(paged.block_tokens == bt);
  std::set<std::int32_t> distinct(paged.ints.begin(), paged.ints.end());
  CHECK(distinct.size() == paged.ints.size());
  for (std::size_t r = 0; r < want_pos.size(); ++r) CHECK(paged.ints[r] % bt == want_pos[r] % bt);
  // Blocks for every sequence's prefix + new tokens: ceil(35/16) + ceil(20/16) + ceil(40/16) = 3 + 2 + 3.
  CHECK(*std::max_element(paged.ints.begin(), paged.ints.end()) < 8 * bt);
  const auto attn = of(b.calls, "prefill_attention");
  REQUIRE(attn.size() == 1);
  CHECK(attn[0].ints == std::vector<std::int32_t>{0, 35, 55});  // cu_seqlens_k
  const auto& ctx = appends[1];
  CHECK(ctx.block_tokens == 1);
  CHECK(ctx.a == attn[0].a);  // the keys the attention reads
  std::vector<std::int32_t> want_rows;
  for (int i = 0; i < 5; ++i) want_rows.push_back(30 + i);
  for (int i = 0; i < 20; ++i) want_rows.push_back(35 + i);
  CHECK(ctx.ints == want_rows);
  // Without prefixes nothing extra runs and the attention reads this step's K.
  RecordingBackend plain;
  k::LayerExecutor ex2(plain, tiny_dims(), {0, 1, bt});
  ex2.run({{5, 20}, {40}, 3});
  CHECK(of(plain.calls, "kv_append").size() == 1);
  CHECK(of(plain.calls, "prefill_attention")[0].ints.empty());
}

TEST_CASE("layer executor: prefill attention time grows with the cached prefix") {
  auto b = k::make_cpu_backend(1);
  k::LayerExecutor ex(*b, tiny_dims(), {1, 3, 16});
  k::LayerBatch chunk{{64}, {}, 1};
  const auto alone = ex.run(chunk);
  chunk.prefill_prefix = {4096};
  const auto after = ex.run(chunk);
  // 64 x 4096 + 64 x 65 / 2 pairs against 64 x 65 / 2: ~127x the attention work.
  CHECK(after.op_s("attention_prefill") > 8 * alone.op_s("attention_prefill"));
  CHECK_THROWS(ex.run({{64}, {}, 1, {4096, 0}}));  // one prefix per prefill sequence
  CHECK_THROWS(ex.run({{64}, {}, 1, {-1}}));
}

TEST_CASE("layer executor: decode attention time grows with the context read") {
  auto b = k::make_cpu_backend(1);
  k::LayerExecutor ex(*b, tiny_dims(), {1, 3, 16});
  const auto short_ctx = ex.run({{}, std::vector<int>(8, 16), 8});
  const auto long_ctx = ex.run({{}, std::vector<int>(8, 4096), 8});
  // 256x the KV: far above any timing noise.
  CHECK(long_ctx.op_s("attention_decode") > 4 * short_ctx.op_s("attention_decode"));
}

TEST_CASE("layer executor: rejects models it cannot run") {
  ModelSpec m = catalog_model("tiny-llama-512");
  CHECK_NOTHROW(k::layer_dims(m, 2, "x"));
  CHECK_THROWS_AS(k::layer_dims(m, 3, "x"), InputError);
  m.mlp = MlpKind::kGelu;
  CHECK_THROWS_AS(k::layer_dims(m, 1, "x"), InputError);
  const auto d = k::layer_dims(catalog_model("tiny-llama-512"), 2, "x");
  CHECK(d.heads == 4);
  CHECK(d.kv_heads == 2);
  CHECK(d.ffn == 704);
  CHECK(d.vocab == 16000);
}

TEST_CASE("real cost model: the batch mapping runs every sequence at its own length after its cached prefix") {
  BatchStats b;
  b.add({100, 0});
  b.add({1, 99});
  b.add({37, 0});
  b.add({1, 10});
  b.add({1, 0});
  b.add({37, 512});  // a chunk after a 512-token prefix
  const auto lb = RealKernelCostModel::map_batch(b);
  CHECK(lb.tokens() == b.new_tokens);
  CHECK(lb.prefill_lens == std::vector<int>{37, 37, 100});
  CHECK(lb.prefill_prefix == std::vector<int>{0, 512, 0});  // (new, prefix) pairs ascending
  CHECK(lb.decode_ctx == std::vector<int>{1, 11, 100});
  CHECK(lb.logit_rows == 6);
  // The executed attention pairs are the batch's (no rescaling).
  double pairs = 0;
  for (std::size_t i = 0; i < lb.prefill_lens.size(); ++i) {
    const double n = lb.prefill_lens[i], c = lb.prefill_prefix[i];
    pairs += n * c + n * (n + 1) / 2;
  }
  CHECK(pairs == b.prefill_pairs);
  // The same sequences in another order are the same executed batch (one memo/timings key).
  BatchStats shuffled;
  for (const SeqShape& s :
       {SeqShape{37, 512}, SeqShape{1, 10}, SeqShape{37, 0}, SeqShape{1, 0}, SeqShape{100, 0}, SeqShape{1, 99}})
    shuffled.add(s);
  const auto again = RealKernelCostModel::map_batch(shuffled);
  CHECK(again.prefill_lens == lb.prefill_lens);
  CHECK(again.prefill_prefix == lb.prefill_prefix);
  CHECK(again.decode_ctx == lb.decode_ctx);
  // Totals that do not describe the sequence list are a bug, not a batch to price.
  BatchStats inconsistent = b;
  inconsistent.decode_seqs += 1;
  CHECK_THROWS(RealKernelCostModel::map_batch(inconsistent));
}

TEST_CASE("real cost model: prices measured ops as real and falls back to the roofline for the rest") {
  nlohmann::json doc = test::base_scenario();
  doc["model"] = "tiny-llama-512";
  doc["cost_model"] = "real";
  doc["real_kernel"] = {{"backend", "cpu"}, {"threads", 1}, {"memo", true}, {"iters", 1}};
  const Scenario s = test::make_scenario(doc);
  auto cm = make_cost_model(s, s.decode);
  CHECK(cm->name() == "real");
  BatchStats b;
  for (int i = 0; i < 4; ++i) b.add({1, 63});
  std::vector<Op> ops;
  build_ops(s.model, s.decode.par, b, ops);
  const CostBreakdown bd = cm->batch_breakdown(s.model, s.decode.par, b, ops);
  REQUIRE(bd.ops.size() == ops.size());
  for (const auto& p : bd.ops) {
    const std::string n = p.op.name;
    CHECK(std::string(p.price.source) == (n == "embedding" ? "roofline" : "real"));
    CHECK(p.price.time_s > 0);
  }
  // memo: the identical batch is not run again and gets the same time.
  auto* real = dynamic_cast<RealKernelCostModel*>(cm.get());
  REQUIRE(real != nullptr);
  const double again = cm->batch_time_s(s.model, s.decode.par, b, ops);
  CHECK(real->batches_measured() == 1);
  CHECK(real->batches_memoized() == 1);
  CHECK(again == doctest::Approx(bd.total_s).epsilon(1e-12));
  // Equal totals (4 sequences, 256 KV tokens) but other contexts: another batch, run.
  BatchStats ragged;
  for (std::int64_t cached : {31, 95, 63, 63}) ragged.add({1, cached});
  REQUIRE(ragged.decode_kv_tokens == b.decode_kv_tokens);
  cm->batch_time_s(s.model, s.decode.par, ragged, ops);
  CHECK(real->batches_measured() == 2);
  CHECK(real->batches_memoized() == 1);
}

TEST_CASE("real cost model: a small scenario runs end to end on the CPU backend") {
  nlohmann::json doc = test::base_scenario();
  doc["model"] = "tiny-llama-512";
  doc["cost_model"] = "real";
  doc["real_kernel"] = {{"backend", "cpu"}, {"threads", 1}};
  doc["workload"]["num_requests"] = 4;
  doc["workload"]["input_tokens"] = {{"dist", "fixed"}, {"value", 40}};
  doc["workload"]["output_tokens"] = {{"dist", "fixed"}, {"value", 3}};
  const SimResult r = test::run(test::make_scenario(doc));
  REQUIRE(r.records.size() == 4);
  for (const auto& rec : r.records) CHECK(rec.finish > rec.first_token);
}

TEST_CASE("real cost model: layers all runs every layer and auto picks by free memory") {
  nlohmann::json doc = test::base_scenario();
  doc["model"] = "tiny-llama-512";
  doc["cost_model"] = "real";
  BatchStats b;
  for (int i = 0; i < 2; ++i) b.add({1, 40});
  for (const char* mode : {"one", "all", "auto"}) {
    doc["real_kernel"] = {{"backend", "cpu"}, {"threads", 1}, {"layers", mode}};
    const Scenario s = test::make_scenario(doc);
    auto cm = make_cost_model(s, s.decode);
    auto* real = dynamic_cast<RealKernelCostModel*>(cm.get());
    REQUIRE(real != nullptr);
    CHECK(real->layers_run().empty());  // nothing executed yet
    std::vector<Op> ops;
    build_ops(s.model, s.decode.par, b, ops);
    CHECK(cm->batch_time_s(s.model, s.decode.par, b, ops) > 0);
    // The tiny model's weights take far less than half of any test machine's memory.
    CHECK(real->layers_run() == (std::string(mode) == "one" ? "one" : "all"));
  }
  // Weights that fit no machine (10^7 layers): "all" is an input error naming
  // what it needs, raised before anything is allocated; "auto" runs one layer.
  doc["real_kernel"] = {{"backend", "cpu"}, {"threads", 1}, {"layers", "all"}};
  const Scenario s = test::make_scenario(doc);
  ModelSpec huge = s.model;
  huge.layers = 10'000'000;
  std::vector<Op> ops;
  build_ops(huge, s.decode.par, b, ops);
  RealKernelCostModel all(s.decode.gpu, huge, s.real_kernel, "test.json");
  CHECK_THROWS_WITH_AS(all.batch_time_s(huge, s.decode.par, b, ops), doctest::Contains("GiB for the weights"),
                       InputError);
  RealKernelOptions auto_options = s.real_kernel;
  auto_options.layers = "auto";
  RealKernelCostModel picks(s.decode.gpu, huge, auto_options, "test.json");
  CHECK(picks.batch_time_s(huge, s.decode.par, b, ops) > 0);
  CHECK(picks.layers_run() == "one");
  doc["real_kernel"] = {{"layers", "every"}};
  CHECK_THROWS_AS(test::make_scenario(doc), InputError);
}

TEST_CASE("real cost model: bad options are input errors") {
  nlohmann::json doc = test::base_scenario();
  doc["cost_model"] = "real";
  doc["real_kernel"] = {{"backend", "gpu"}};
  CHECK_THROWS_AS(test::make_scenario(doc), InputError);
  doc["real_kernel"] = {{"iters", 0}};
  CHECK_THROWS_AS(test::make_scenario(doc), InputError);
  doc["real_kernel"] = {{"threads", -1}};
  CHECK_THROWS_AS(test::make_scenario(doc), InputError);
  doc["real_kernel"] = {{"memo", true}, {"mem0", true}};
  CHECK_THROWS_AS(test::make_scenario(doc), InputError);
  std::string why;
  if (!k::make_cuda_backend(&why)) {
    doc["model"] = "tiny-llama-512";
    doc["real_kernel"] = {{"backend", "cuda"}};
    const Scenario s = test::make_scenario(doc);
    CHECK_THROWS_AS(make_cost_model(s, s.decode), InputError);
  }
}

TEST_CASE("cost model hook: batch_time_s defaults to the sum of op prices") {
  const Scenario s = test::make_scenario(test::base_scenario());
  auto cm = make_cost_model(s, s.prefill);
  BatchStats b;
  b.add({300, 0});
  std::vector<Op> ops;
  build_ops(s.model, s.prefill.par, b, ops);
  CHECK(cm->batch_time_s(s.model, s.prefill.par, b, ops) == cm->total_s(ops));
  CHECK(cm->batch_breakdown(s.model, s.prefill.par, b, ops).total_s == cm->breakdown(ops).total_s);
}
