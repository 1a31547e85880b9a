#include <doctest/doctest.h>

#include <cmath>

#include "sim/config/scenario.h"
#include "sim/core/error.h"
#include "sim/cost/cost_model.h"
#include "sim/model/model_spec.h"
#include "sim/model/ops.h"

using namespace pdsim;

namespace {
ModelCatalog shipped_catalog() {
  ModelCatalog c;
  c.load_file(std::string(PDSIM_SOURCE_DIR) + "/profiles/models.json");
  return c;
}

ModelSpec tiny_model() {
  ModelSpec m;
  m.name = "hand";
  m.layers = 2;
  m.hidden = 64;
  m.heads = 4;
  m.kv_heads = 2;
  m.head_dim = 16;
  m.ffn_hidden = 128;
  m.vocab = 100;
  return m;
}

const Op& find(const std::vector<Op>& ops, const std::string& name) {
  for (const auto& op : ops)
    if (name == op.name) return op;
  FAIL("op not found: " << name);
  return ops.front();
}
}  // namespace

TEST_CASE("catalog parameter counts match published figures within 1%") {
  const ModelCatalog catalog = shipped_catalog();
  const char* required[] = {"llama-2-7b",  "llama-2-13b", "llama-2-70b", "llama-3.1-8b", "llama-3.1-70b",
                            "mistral-7b", "qwen2.5-32b", "opt-13b",     "opt-66b",      "opt-175b"};
  for (const char* name : required) {
    CAPTURE(name);
    REQUIRE(catalog.contains(name));
    const ModelSpec& m = catalog.get(name, "test");
    REQUIRE(m.published_params > 0);
    CHECK(std::fabs(m.param_count() / m.published_params - 1.0) <= 0.01);
  }
  // Exact figure from the HF safetensors index of Llama-2-7B (independent of the catalog's published_params).
  CHECK(catalog.get("llama-2-7b", "test").param_count() == doctest::Approx(6738415616.0).epsilon(1e-9));
}

TEST_CASE("KV bytes per token: llama-3.1-8b is 128 KiB in bf16") {
  const ModelCatalog catalog = shipped_catalog();
  // 2 (K,V) x 32 layers x 8 KV heads x 128 dims x 2 bytes = 131072.
  CHECK(catalog.get("llama-3.1-8b", "test").kv_bytes_per_token() == 131072.0);
}

TEST_CASE("unknown catalog model suggests the nearest name") {
  const ModelCatalog catalog = shipped_catalog();
  try {
    catalog.get("llama-3.1-8", "where");
    FAIL("expected an error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("did you mean \"llama-3.1-8b\"") != std::string::npos);
  }
}

TEST_CASE("ops of a hand-computed prefill batch") {
  const ModelSpec m = tiny_model();
  std::vector<Op> ops;
  build_ops(m, Parallelism{1, 1}, stats_of({{10, 0}}), ops);
  const Op& qkv = find(ops, "qkv_proj");
  CHECK(qkv.m == 10);
  CHECK(qkv.n == 128);  // (4 + 2*2) heads x 16
  CHECK(qkv.k == 64);
  CHECK(qkv.flops == 2.0 * 10 * 128 * 64);
  CHECK(qkv.bytes == 2.0 * 128 * 64 + 2.0 * (10 * 64 + 10 * 128));
  CHECK(qkv.count == 2);
  const Op& attn = find(ops, "attention_prefill");
  CHECK(attn.flops == 4.0 * 4 * 16 * 55);  // 55 causal pairs among 10 tokens
  CHECK(attn.bytes == 2.0 * 2 * 2 * 16 * 10 + 2.0 * 2 * 4 * 16 * 10);
  CHECK(find(ops, "mlp_gate_up").n == 256);
  CHECK(find(ops, "mlp_down").k == 128);
  CHECK(find(ops, "lm_head").flops == 2.0 * 1 * 100 * 64);
  for (const auto& op : ops) CHECK(std::string(op.name) != "tp_allreduce");

  // TP=2 halves the heads per GPU and adds two all-reduces per layer.
  build_ops(m, Parallelism{2, 1}, stats_of({{10, 0}}), ops);
  CHECK(find(ops, "qkv_proj").n == 64);
  const Op& ar = find(ops, "tp_allreduce");
  CHECK(ar.count == 4);
  CHECK(ar.bytes == 2.0 * 10 * 64);
}

TEST_CASE("decode attention reads each sequence's whole KV") {
  const ModelSpec m = tiny_model();
  std::vector<Op> ops;
  build_ops(m, Parallelism{1, 1}, stats_of({{1, 99}, {1, 199}}), ops);
  const Op& attn = find(ops, "attention_decode");
  CHECK(attn.flops == 4.0 * 4 * 16 * 300);
  CHECK(attn.bytes == 2.0 * 2 * 2 * 16 * 300 + 2.0 * 2 * 4 * 16 * 2);
  CHECK(find(ops, "lm_head").m == 2);
}

TEST_CASE("roofline prices a hand-computed GEMM") {
  GpuSpec g;
  g.name = "hand";
  g.dense_tflops = {{"bf16", 1.0}, {"fp32", 0.5}};
  g.hbm_gbytes_per_s = 1.0;
  g.eff_gemm = 0.5;
  g.eff_attention = 0.5;
  g.eff_memory = 0.8;
  g.eff_link = 1;
  g.link_gbytes_per_s = 1;
  g.kernel_overhead_us = 1.0;
  const RooflineCostModel rl(g, 2, "test");
  Op op{"g", OpClass::kGemm};
  op.flops = 163840;
  op.bytes = 20224;
  op.count = 2;
  const OpPrice memory_bound = rl.price(op);
  CHECK(memory_bound.time_s == doctest::Approx(2 * (20224 / 0.8e9 + 1e-6)).epsilon(1e-12));
  CHECK(std::string(memory_bound.bound) == "memory");
  op.flops = 1e9;  // now compute bound: 1e9 / (1e12 * 0.5) = 2 ms
  const OpPrice compute_bound = rl.price(op);
  CHECK(compute_bound.time_s == doctest::Approx(2 * (2e-3 + 1e-6)).epsilon(1e-12));
  CHECK(std::string(compute_bound.bound) == "compute");
  Op ar{"ar", OpClass::kAllReduce};
  ar.bytes = 1e6;
  ar.group_gpus = 4;  // ring: 2*(4-1)/4 of the message per GPU
  CHECK(rl.price(ar).time_s == doctest::Approx(1.5e6 / 1e9 + 1e-6).epsilon(1e-12));
}

TEST_CASE("roofline batch time grows with prompt length and with context") {
  const ModelCatalog catalog = shipped_catalog();
  const ModelSpec& m = catalog.get("llama-3.1-8b", "test");
  GpuCatalog gpus(std::string(PDSIM_SOURCE_DIR) + "/profiles/gpus");
  const RooflineCostModel rl(gpus.get("h100-sxm", "test"), 2, "test");
  std::vector<Op> ops;
  double last = 0;
  for (std::int64_t len : {16, 128, 1024, 4096, 16384}) {
    build_ops(m, Parallelism{1, 1}, stats_of({{len, 0}}), ops);
    const double t = rl.total_s(ops);
    CHECK(t > last);
    last = t;
  }
  last = 0;
  for (std::int64_t ctx : {16, 1024, 8192, 65536}) {
    build_ops(m, Parallelism{1, 1}, stats_of(std::vector<SeqShape>(32, SeqShape{1, ctx - 1})), ops);
    const double t = rl.total_s(ops);
    CHECK(t > last);
    last = t;
  }
}

TEST_CASE("weights per GPU hold a whole KV head when kv_heads is below tp") {
  // tiny_model: hidden 64, 4 heads, 2 KV heads, head_dim 16, ffn 128, vocab 100, 2 layers, gated, rmsnorm, untied.
  // Whole model: per layer q 64x64 + k,v 2x64x32 + o 64x64 + mlp 3x64x128 + norms 128 = 36992;
  // x2 layers + embedding and LM head 2x6400 + final norm 64 = 86848 params, 173696 bytes.
  const ModelSpec m = tiny_model();
  CHECK(m.weight_bytes_total() == 173696.0);
  // tp=2: one KV head per GPU, nothing replicated: an even split.
  CHECK(weight_bytes_per_gpu(m, Parallelism{2, 1}) == 86848.0);
  // tp=4: per GPU and layer q 64x16 + k,v 2x64x16 (a whole KV head, held by 2 GPUs) + o 16x64 + mlp 3x64x32
  // + norms 128/4 = 10272; x2 layers + (embedding + LM head) 12800/4 + final norm 64/4 = 23760 params.
  CHECK(weight_bytes_per_gpu(m, Parallelism{4, 1}) == 2 * 23760.0);
  CHECK(weight_bytes_per_gpu(m, Parallelism{4, 2}) == 23760.0);
  // The QKV GEMM already has the replicated shape: (1 q + 2 x 1 kv) heads x 16.
  std::vector<Op> ops;
  build_ops(m, Parallelism{4, 1}, stats_of({{10, 0}}), ops);
  CHECK(find(ops, "qkv_proj").n == 48);
  CHECK(find(ops, "qkv_proj").bytes == 2.0 * 48 * 64 + 2.0 * (10 * 64 + 10 * 48));

  // KV capacity follows: 0.5 GiB usable, minus the weights, over 2 (K,V) x 1 head x 16 x 2 bytes x 2 layers = 128 B/token.
  PoolConfig pool;
  pool.gpu.name = "hand";
  pool.gpu.memory_gib = 1;
  pool.memory_utilization = 0.5;
  pool.block_tokens = 1;
  pool.par = Parallelism{4, 1};
  CHECK(kv_bytes_per_token_per_gpu(m, pool.par) == 128.0);
  CHECK(kv_capacity_tokens(m, pool, "test") == (536870912 - 47520) / 128);
}
