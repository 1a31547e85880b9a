#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "sim/config/json_object.h"
#include "sim/core/error.h"
#include "test_util.h"

using namespace pdsim;
using pdsim::test::base_scenario;
using pdsim::test::make_scenario;

namespace {
// The message parse_scenario throws for `doc`, or "" when it accepts it.
std::string error_for(const nlohmann::json& doc) {
  try {
    make_scenario(doc);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("the base scenario is valid") { CHECK(error_for(base_scenario()) == ""); }

TEST_CASE("misspelt keys are rejected with the nearest valid key") {
  auto doc = base_scenario();
  doc["cluster"]["prefill"]["max_batch_token"] = 100;
  CHECK(error_for(doc) ==
        "test.json: $.cluster.prefill.max_batch_token: unknown key \"max_batch_token\"; did you mean \"max_batch_tokens\"?");
  doc = base_scenario();
  doc["workload"]["arival"] = doc["workload"]["arrival"];
  doc["workload"].erase("arrival");
  // The missing required key is reported before the stray one.
  CHECK(error_for(doc) == "test.json: $.workload.arrival: missing required key");
  doc = base_scenario();
  doc["sloo"] = 1;
  CHECK(error_for(doc).find("$.sloo: unknown key \"sloo\"; did you mean \"slo\"?") != std::string::npos);
}

TEST_CASE("wrong types and impossible values name the JSON path") {
  auto doc = base_scenario();
  doc["workload"]["arrival"]["rate_rps"] = "fast";
  CHECK(error_for(doc) == "test.json: $.workload.arrival.rate_rps: expected a number, got string \"fast\"");
  doc = base_scenario();
  doc["workload"]["arrival"]["rate_rps"] = -1;
  CHECK(error_for(doc) == "test.json: $.workload.arrival.rate_rps: must be > 0, got -1");
  doc = base_scenario();
  doc["cluster"]["decode"]["instances"] = 0;
  CHECK(error_for(doc) == "test.json: $.cluster.decode.instances: must be in [1, 100000], got 0");
  doc = base_scenario();
  doc["cluster"]["prefill"]["tp"] = 3;
  CHECK(error_for(doc) == "test.json: $.cluster.prefill.tp: must divide the model's 32 attention heads, got 3");
  doc = base_scenario();
  doc["cluster"]["mode"] = "disagregated";
  CHECK(error_for(doc).find("did you mean \"disaggregated\"") != std::string::npos);
  doc = base_scenario();
  doc["cluster"]["prefill"]["tp"] = 1.5;
  CHECK(error_for(doc) == "test.json: $.cluster.prefill.tp: expected an integer, got 1.5");
  doc = base_scenario();
  doc["workload"]["input_tokens"] = {{"dist", "uniform"}, {"min", 10}, {"max", 5}};
  CHECK(error_for(doc) == "test.json: $.workload.input_tokens.max: must be >= min (10)");
}

TEST_CASE("a model that does not fit says by how much") {
  auto doc = base_scenario();
  doc["model"] = "llama-3.1-70b";
  const std::string e = error_for(doc);
  CHECK(e.find("test.json: $.cluster.prefill: llama-3.1-70b does not fit:") == 0);
  CHECK(e.find("short by") != std::string::npos);
  doc["cluster"]["prefill"]["tp"] = 4;
  doc["cluster"]["decode"]["tp"] = 4;
  CHECK(error_for(doc) == "");
}

TEST_CASE("a request longer than the KV capacity is rejected before running") {
  auto doc = base_scenario();
  doc["cluster"]["decode"]["gpu"] = "l40s";
  doc["cluster"]["decode"]["memory_utilization"] = 0.42;  // ~18.7 GiB: weights ~15 GiB, KV ~ 3.7 GiB ~ 30k tokens
  doc["workload"]["input_tokens"] = {{"dist", "fixed"}, {"value", 60000}};
  doc["model"] = "llama-3.1-8b";
  const Scenario s = make_scenario(doc);
  CHECK_THROWS_WITH_AS(test::run(s), doctest::Contains("needs KV for 60016 tokens but a decode instance holds"),
                       InputError);
}

TEST_CASE("malformed JSON reports line and column") {
  try {
    parse_json_text("{\n  \"a\": 1,\n  \"b\": ]\n}", "x.json");
    FAIL("expected an error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("x.json:3:") == 0);
  }
}

TEST_CASE("--set overrides values and creating leaves - bad overrides are input errors") {
  nlohmann::json doc = base_scenario();
  apply_override(doc, "cluster.decode.instances=3", "f");
  apply_override(doc, "name=hello", "f");
  CHECK(doc["cluster"]["decode"]["instances"] == 3);
  CHECK(doc["name"] == "hello");
  CHECK_THROWS_AS(apply_override(doc, "novalue", "f"), InputError);
  CHECK_THROWS_AS(apply_override(doc, "name.x=1", "f"), InputError);
}

TEST_CASE("inline models are accepted and validated") {
  auto doc = base_scenario();
  doc["model"] = nlohmann::json::parse(R"({"name": "mini", "layers": 4, "hidden": 512, "heads": 8, "kv_heads": 8,
      "head_dim": 64, "ffn_hidden": 1024, "vocab": 1000, "mlp": "gelu"})");
  CHECK(error_for(doc) == "");
  doc["model"]["kv_heads"] = 3;
  CHECK(error_for(doc) == "test.json: $.model.kv_heads: must divide heads (8), got 3");
}

TEST_CASE("an extra catalog file given by path adds models") {
  const auto dir = std::filesystem::temp_directory_path() / "pdsim_catalog_test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "extra.json") << R"({"models": {"my-model": {"layers": 2, "hidden": 256, "heads": 4,
      "kv_heads": 2, "head_dim": 64, "ffn_hidden": 512, "vocab": 1000, "mlp": "gated_silu"}}})";
  auto doc = base_scenario();
  doc["catalog"] = "extra.json";
  doc["model"] = "my-model";
  const Scenario s = parse_scenario(doc, (dir / "scenario.json").string(), test::load_options());
  CHECK(s.model.layers == 2);
  CHECK(s.model.hidden == 256);
}

TEST_CASE("pipeline parallelism splits the weights so a large model fits") {
  auto doc = base_scenario();
  doc["model"] = "llama-3.1-70b";
  // 131.4 GiB of bf16 weights: over one H100's 0.9 x 79.2 GiB, half of it fits.
  CHECK(error_for(doc).find("does not fit") != std::string::npos);
  doc["cluster"]["prefill"]["pp"] = 2;
  doc["cluster"]["decode"]["pp"] = 2;
  const Scenario s = make_scenario(doc);
  CHECK(s.prefill.gpus() == 2);
  std::vector<Op> ops;
  build_ops(s.model, s.prefill.par, stats_of({{100, 0}}), ops);
  bool handoff = false;
  for (const auto& op : ops) handoff |= std::string(op.name) == "pp_handoff" && op.count == 1;
  CHECK(handoff);
}

TEST_CASE("arrivals spanning beyond the clock's safe range are an input error") {
  auto doc = base_scenario();
  doc["workload"]["arrival"]["rate_rps"] = 1e-9;
  CHECK(error_for(doc).find("$.workload.arrival: num_requests / rate_rps spans more than 1e8 s") != std::string::npos);
}

TEST_CASE("out-of-range integers and numbers are input errors before any narrowing") {
  auto doc = base_scenario();
  doc["cluster"]["prefill"]["instances"] = 4294967295LL;
  CHECK(error_for(doc) == "test.json: $.cluster.prefill.instances: must be in [1, 100000], got 4294967295");
  doc = base_scenario();
  doc["cluster"]["decode"]["tp"] = 4294967298LL;
  CHECK(error_for(doc).find("$.cluster.decode.tp: must be in [1, 1024]") != std::string::npos);
  doc = base_scenario();
  doc["cluster"]["decode"]["block_tokens"] = 9223372036854775807LL;
  CHECK(error_for(doc).find("$.cluster.decode.block_tokens: must be in [1, 65536]") != std::string::npos);
  doc = base_scenario();
  doc["workload"]["input_tokens"] = {{"dist", "lognormal"}, {"mean", 100}, {"cv", 1e300}};
  CHECK(error_for(doc).find("$.workload.input_tokens.cv: must be in") != std::string::npos);
  doc = base_scenario();
  doc["cluster"]["kv_transfer"]["bandwidth_gbps"] = 1e-300;
  CHECK(error_for(doc).find("$.cluster.kv_transfer.bandwidth_gbps: must be in") != std::string::npos);
  CHECK_THROWS_WITH_AS(parse_json_text("{\"a\": 1e400}", "big.json"), doctest::Contains("big.json"), InputError);
  // 2^32 + 1 narrowed to int is 1: real-kernel iterations and model dimensions are range-checked first.
  doc = base_scenario();
  doc["real_kernel"] = {{"iters", 4294967297LL}};
  CHECK(error_for(doc) == "test.json: $.real_kernel.iters: must be in [1, 1000], got 4294967297");
  doc["real_kernel"] = {{"warmup_iters", 4294967296LL}};
  CHECK(error_for(doc).find("$.real_kernel.warmup_iters: must be in [0, 1000]") != std::string::npos);
  doc["real_kernel"] = {{"threads", -1}};
  CHECK(error_for(doc).find("$.real_kernel.threads: must be in [0, 4096]") != std::string::npos);
  doc = base_scenario();
  doc["model"] = {{"name", "m"}, {"layers", 4294967297LL}, {"hidden", 512}, {"heads", 8}, {"kv_heads", 8},
                  {"head_dim", 64}, {"ffn_hidden", 1024}, {"vocab", 1000}, {"mlp", "gated_silu"}};
  CHECK(error_for(doc).find("$.model.layers: must be in [1, 100000], got 4294967297") != std::string::npos);
  doc["model"]["layers"] = 2;
  doc["model"]["weight_bytes"] = 4294967298LL;  // narrowed, 2: it passed the 1/2/4 check
  CHECK(error_for(doc).find("$.model.weight_bytes: must be in [1, 4]") != std::string::npos);
  doc["model"]["weight_bytes"] = 2;
  doc["model"]["kv_bytes"] = 3;
  CHECK(error_for(doc).find("$.model.kv_bytes: must be 1, 2 or 4 bytes, got 3") != std::string::npos);
  doc["model"]["kv_bytes"] = 1;
  CHECK(error_for(doc) == "");
}

TEST_CASE("a length distribution's mean must lie within its clip range") {
  auto doc = base_scenario();
  doc["workload"]["input_tokens"] = {{"dist", "lognormal"}, {"mean", 100000}, {"cv", 0.5}, {"max", 8192}};
  CHECK(error_for(doc) == "test.json: $.workload.input_tokens.mean: mean 100000.0 is above max 8192");
  doc["workload"]["input_tokens"] = {{"dist", "normal"}, {"mean", 8}, {"std", 2}, {"min", 16}};
  CHECK(error_for(doc) == "test.json: $.workload.input_tokens.mean: mean 8.000 is below min 16");
  doc["workload"]["input_tokens"] = {{"dist", "normal"}, {"mean", 16}, {"std", 2}, {"min", 16}, {"max", 16}};
  CHECK(error_for(doc) == "");  // on a bound is allowed: a degenerate but deliberate range
}

TEST_CASE("tp must split the KV heads evenly or replicate them") {
  auto doc = base_scenario();
  doc["model"] = "qwen2.5-32b";  // 40 heads and 8 KV heads
  doc["cluster"]["prefill"]["tp"] = 5;
  doc["cluster"]["decode"]["tp"] = 5;
  CHECK(error_for(doc) == "test.json: $.cluster.prefill.tp: must divide the model's 8 KV heads or be a multiple of it, got 5");
  doc["cluster"]["prefill"]["tp"] = 8;
  doc["cluster"]["decode"]["tp"] = 8;
  CHECK(error_for(doc) == "");
}
