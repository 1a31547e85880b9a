// The calibrated roofline (sim/cost/calibration.h): the fit recovers factors
// that generated its data, Hockney's m_half term behaves as defined, the
// roofline prices with the same formula, and bad factors in a profile are
// input errors.
#include <algorithm>
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "sim/config/json_object.h"
#include "sim/core/error.h"
#include "sim/cost/calibration.h"
#include "sim/cost/cost_model.h"
#include "sim/cost/profiled.h"
#include "sim/model/model_spec.h"

using namespace pdsim;
namespace fs = std::filesystem;

namespace {
constexpr double kPeak = 100e12, kBw = 2e12;

std::vector<CalibrationPoint> gemm_points(const RooflineFactors& truth) {
  std::vector<CalibrationPoint> pts;
  for (double n : {1024.0, 4096.0, 14336.0})
    for (double m = 1; m <= 8192; m *= 2) {
      const Op op = gemm_row_op(m, n, 4096, 2);
      pts.push_back({op, calibrated_seconds(truth, op, kPeak, kBw)});
    }
  return pts;
}

double worst_rel_err(const std::vector<CalibrationPoint>& pts, const RooflineFactors& f) {
  double worst = 0;
  for (const auto& p : pts) worst = std::max(worst, std::fabs(calibrated_seconds(f, p.op, kPeak, kBw) / p.seconds - 1));
  return worst;
}
}  // namespace

TEST_CASE("calibration: Hockney n_half doubles the compute term at a GEMM's m or attention's keys per query") {
  RooflineFactors f{0.5, 1, 0, 0};
  const Op op = gemm_row_op(64, 8192, 8192, 2);
  const double base = calibrated_terms(f, op, kPeak, kBw).compute_s;
  CHECK(base == doctest::Approx(op.flops / (kPeak * 0.5)).epsilon(1e-12));
  f.n_half = 64;
  CHECK(calibrated_terms(f, op, kPeak, kBw).compute_s == doctest::Approx(2 * base).epsilon(1e-12));
  // Prefill attention: in keys per query row, pairs / rows; a causal prompt
  // of 1024 tokens has 1024 x 1025 / 2 pairs over 1024 rows: 512.5 keys each.
  const Op attn = attention_row_op(false, 2, 1024, 32, 8, 128);
  CHECK(attn.pairs / attn.m == doctest::Approx(512.5).epsilon(1e-12));
  RooflineFactors g{0.5, 1, 0, 0};
  const double a0 = calibrated_terms(g, attn, kPeak, kBw).compute_s;
  CHECK(a0 == doctest::Approx(attn.flops / (kPeak * 0.5)).epsilon(1e-12));
  g.n_half = 512.5;
  CHECK(calibrated_terms(g, attn, kPeak, kBw).compute_s == doctest::Approx(2 * a0).epsilon(1e-12));
  // A chunk of 64 tokens after 448 cached has 64 x 448 + 64 x 65 / 2 pairs: 480.5 keys per query.
  BatchStats chunk;
  chunk.add(SeqShape{64, 448});
  std::vector<Op> ops;
  ModelCatalog catalog;
  catalog.load_file(std::string(PDSIM_SOURCE_DIR) + "/profiles/models.json");
  build_ops(catalog.get("tiny-llama-512", "test"), Parallelism{1, 1}, chunk, ops);
  const auto it = std::find_if(ops.begin(), ops.end(), [](const Op& o) { return o.op_class == OpClass::kAttentionPrefill; });
  REQUIRE(it != ops.end());
  g.n_half = 480.5;
  CHECK(calibrated_terms(g, *it, kPeak, kBw).compute_s == doctest::Approx(2 * it->flops / (kPeak * 0.5)).epsilon(1e-12));
  // Decode attention has no Hockney length: the term is ignored.
  const Op dec = attention_row_op(true, 8, 1024, 32, 8, 128);
  RooflineFactors d{0.5, 1, 0, 0};
  const double d0 = calibrated_terms(d, dec, kPeak, kBw).compute_s;
  d.n_half = 64;
  CHECK(calibrated_terms(d, dec, kPeak, kBw).compute_s == d0);
}

TEST_CASE("calibration: the fit recovers prefill attention's half length in keys per query") {
  const RooflineFactors truth{0.5, 1, 0, 48};
  std::vector<CalibrationPoint> pts;
  for (double b : {1.0, 4.0})
    for (double len = 16; len <= 4096; len *= 2) {
      const Op op = attention_row_op(false, b, len, 32, 8, 128);
      pts.push_back({op, calibrated_seconds(truth, op, kPeak, kBw)});
    }
  const RooflineFactors f = fit_roofline_factors(pts, kPeak, kBw, FitOptions{false, true, false});
  CHECK(f.n_half >= 32);  // the grid: .. 24 32 48 64 ..
  CHECK(f.n_half <= 64);
  CHECK(worst_rel_err(pts, f) < 0.03);
  const RooflineFactors without = fit_roofline_factors(pts, kPeak, kBw, FitOptions{false, false, false});
  CHECK(worst_rel_err(pts, without) > 0.1);
}

TEST_CASE("calibration: the fit recovers the factors that generated the data") {
  const RooflineFactors truth{0.7, 0.4, 5, 8};
  const auto pts = gemm_points(truth);
  const RooflineFactors with = fit_roofline_factors(pts, kPeak, kBw, FitOptions{false, true});
  CHECK(with.n_half >= 4);  // the m_half grid is coarse (.. 4 6 8 12 ..)
  CHECK(with.n_half <= 12);
  CHECK(with.compute == doctest::Approx(0.7).epsilon(0.02));
  CHECK(with.memory == doctest::Approx(0.4).epsilon(0.02));
  CHECK(worst_rel_err(pts, with) < 0.02);
  // Without the m_half term one curve cannot follow the small-m rows.
  const RooflineFactors without = fit_roofline_factors(pts, kPeak, kBw, FitOptions{false, false});
  CHECK(without.n_half == 0);
  CHECK(worst_rel_err(pts, without) > 0.05);
}

TEST_CASE("calibration: min_compute floors a small-m GEMM's efficiency and nothing else") {
  const RooflineFactors falloff{0.9, 1, 0, 8};
  RooflineFactors floored = falloff;
  floored.min_compute = 0.6;
  // m = 2: the falloff alone gives 0.9 x 2/10 = 0.18 of peak; the floor 0.6.
  const Op small = gemm_row_op(2, 8192, 8192, 2);
  CHECK(calibrated_terms(falloff, small, kPeak, kBw).compute_s ==
        doctest::Approx(small.flops / (kPeak * 0.18)).epsilon(1e-12));
  CHECK(calibrated_terms(floored, small, kPeak, kBw).compute_s ==
        doctest::Approx(small.flops / (kPeak * 0.6)).epsilon(1e-12));
  // m = 256: 0.9 x 256/264 = 0.873 is above the floor: unchanged.
  const Op big = gemm_row_op(256, 8192, 8192, 2);
  CHECK(calibrated_terms(floored, big, kPeak, kBw).compute_s == calibrated_terms(falloff, big, kPeak, kBw).compute_s);
  // Not a GEMM: no m, no floor.
  const Op attn = attention_row_op(false, 1, 1024, 32, 8, 128);
  CHECK(calibrated_terms(floored, attn, kPeak, kBw).compute_s == calibrated_terms(falloff, attn, kPeak, kBw).compute_s);
}

TEST_CASE("calibration: the fit recovers a small-m floor that generated the data") {
  // Shaped like Eigen's float GEMMs on the CPU profile of 2026-12-03 (its
  // ceilings too, so small-m rows are compute-bound): flat efficiency at
  // small m, Hockney's falloff above it.
  const double peak = 41.5e9, bw = 37.4e9;
  const RooflineFactors truth{0.97, 0.5, 0, 6, 0.58};
  std::vector<CalibrationPoint> pts;
  for (double n : {512.0, 1024.0, 2816.0})
    for (double m = 1; m <= 1024; m *= 2) {
      const Op op = gemm_row_op(m, n, 512, 2);
      pts.push_back({op, calibrated_seconds(truth, op, peak, bw)});
    }
  auto worst = [&](const RooflineFactors& f) {
    double w = 0;
    for (const auto& p : pts) w = std::max(w, std::fabs(calibrated_seconds(f, p.op, peak, bw) / p.seconds - 1));
    return w;
  };
  const RooflineFactors f = fit_roofline_factors(pts, peak, bw, FitOptions{false, true, true});
  CHECK(f.min_compute == doctest::Approx(0.58).epsilon(0.03));
  CHECK(f.compute == doctest::Approx(0.97).epsilon(0.02));
  CHECK(worst(f) < 0.03);
  // Without the floor no Hockney curve follows both the flat small-m rows and the large ones.
  const RooflineFactors no_floor = fit_roofline_factors(pts, peak, bw, FitOptions{false, true, false});
  CHECK(no_floor.min_compute == 0);
  CHECK(worst(no_floor) > 0.15);
}

TEST_CASE("calibration: all-reduce fit uses the ring volume over the link") {
  const RooflineFactors truth{1, 0.6, 12, 0};
  std::vector<CalibrationPoint> pts;
  for (double bytes = 1024; bytes <= 64e6; bytes *= 4) {
    const Op op = allreduce_row_op(4, bytes);
    // Ring: 2 (n-1)/n of the message per GPU.
    pts.push_back({op, 2.0 * 3 / 4 * bytes / (kBw * 0.6) + 12e-6});
  }
  const RooflineFactors f = fit_roofline_factors(pts, kPeak, kBw, FitOptions{true, false});
  CHECK(f.memory == doctest::Approx(0.6).epsilon(0.02));
  CHECK(f.overhead_us == doctest::Approx(12).epsilon(0.05));
}

TEST_CASE("calibration: the roofline prices GEMM and elementwise ops with the fitted factors") {
  GpuSpec g;
  g.name = "hand";
  g.dense_tflops = {{"bf16", 100}, {"fp32", 50}};
  g.hbm_gbytes_per_s = 2000;
  g.link_gbytes_per_s = 400;
  g.kernel_overhead_us = 3;
  g.calibrated.present = true;
  g.calibrated.gemm = {0.8, 0.9, 4, 16};
  g.calibrated.attention_prefill = g.calibrated.attention_decode = g.calibrated.allreduce = {1, 1, 0, 0};
  Op ew{"mlp_silu_mul", OpClass::kElementwise};
  ew.flops = 6e9;
  ew.bytes = 3e9;
  ew.count = 2;
  const RooflineCostModel before(g, 2, "test");
  // Datasheet path: max(6e9 / 50e12, 3e9 / 2e12) + 3 us, twice.
  CHECK(before.price(ew).time_s == doctest::Approx(2 * (1.5e-3 + 3e-6)).epsilon(1e-12));
  g.calibrated.elementwise["mlp_silu_mul"] = {0.5, 0.25, 10, 0};
  const RooflineCostModel after(g, 2, "test");
  CHECK(after.price(ew).time_s == doctest::Approx(2 * (3e9 / (2e12 * 0.25) + 10e-6)).epsilon(1e-12));
  // An elementwise op without fitted factors keeps the datasheet path.
  Op norms = ew;
  norms.name = "norms_residual";
  CHECK(after.price(norms).time_s == doctest::Approx(2 * (1.5e-3 + 3e-6)).epsilon(1e-12));
  Op gemm = gemm_row_op(256, 8192, 8192, 2);
  gemm.count = 3;
  const double compute = gemm.flops * (256 + 16) / 256 / (100e12 * 0.8);
  CHECK(after.price(gemm).time_s == doctest::Approx(3 * (compute + 4e-6)).epsilon(1e-12));
  CHECK(std::string(after.price(gemm).bound) == "compute");
  // GEMMs of one row: the GEMM factors (Hockney term and all) until the profile has gemv factors, then those.
  Op gemv = gemm_row_op(1, 8192, 8192, 2);
  const double gemm_m1 = std::max(gemv.flops * 17 / (100e12 * 0.8), gemv.bytes / (2000e9 * 0.9)) + 4e-6;
  CHECK(after.price(gemv).time_s == doctest::Approx(gemm_m1).epsilon(1e-12));
  g.calibrated.gemv = RooflineFactors{1, 0.6, 2, 0};
  const RooflineCostModel with_gemv(g, 2, "test");
  CHECK(with_gemv.price(gemv).time_s ==
        doctest::Approx(std::max(gemv.flops / 100e12, gemv.bytes / (2000e9 * 0.6)) + 2e-6).epsilon(1e-12));
  CHECK(std::string(with_gemv.price(gemv).bound) == "memory");
  CHECK(with_gemv.price(gemm).time_s == after.price(gemm).time_s);  // m = 256: still the GEMM factors
  Op two = gemm_row_op(2, 8192, 8192, 2);
  CHECK(with_gemv.price(two).time_s == after.price(two).time_s);
}

TEST_CASE("calibration: every elementwise op the op list emits has a calibration name") {
  ModelCatalog catalog;
  catalog.load_file(std::string(PDSIM_SOURCE_DIR) + "/profiles/models.json");
  for (const char* model : {"llama-3.1-8b", "opt-13b"}) {
    BatchStats b;
    b.add(SeqShape{100, 0});
    b.add(SeqShape{1, 50});
    std::vector<Op> ops;
    build_ops(catalog.get(model, "test"), Parallelism{2, 2}, b, ops);
    for (const Op& op : ops)
      if (op.op_class == OpClass::kElementwise) {
        bool listed = false;
        for (const char* n : kElementwiseOpNames) listed = listed || std::string(n) == op.name;
        INFO(model << " " << op.name);
        CHECK(listed);
      }
  }
}

TEST_CASE("calibration: m_half_rows, min_compute and elementwise factors in a GPU profile are range-checked") {
  const fs::path dir = fs::temp_directory_path() / ("pdsim_cal_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto write = [&](const std::string& gemm_extra, const std::string& extra_class) {
    std::ofstream f(dir / "g.json");
    f << R"({"name": "g", "device": "d", "dense_tflops": {"bf16": 100, "fp32": 50}, "hbm_gbytes_per_s": 2000,
"memory_gib": 80, "intra_node_link": {"kind": "nvlink", "gbytes_per_s_per_direction": 400},
"nic_gbits_per_s": 400, "price_usd_per_gpu_hour": 2,
"efficiency": {"gemm": 0.8, "attention": 0.6, "memory": 0.8, "link": 0.8}, "kernel_overhead_us": 3,
"calibrated": {"method": "m", "source": "s",
 "gemm": {"compute": 0.8, "memory": 0.9, "overhead_us": 4, "rows_fit": 1, "rows_test": 1, "median_abs_rel_err": 0, "p90_abs_rel_err": 0)"
      << gemm_extra << R"(},
 "attention_prefill": {"compute": 0.8, "memory": 0.9, "overhead_us": 4, "rows_fit": 1, "rows_test": 1, "median_abs_rel_err": 0, "p90_abs_rel_err": 0},
 "attention_decode": {"compute": 0.8, "memory": 0.9, "overhead_us": 4, "rows_fit": 1, "rows_test": 1, "median_abs_rel_err": 0, "p90_abs_rel_err": 0},
 "allreduce": {"link": 0.9, "overhead_us": 4, "rows_fit": 1, "rows_test": 1, "median_abs_rel_err": 0, "p90_abs_rel_err": 0})"
      << extra_class << R"(},
"sources": {"all": "test"}})";
  };
  const std::string factors =
      "{\"compute\": 0.5, \"memory\": 0.25, \"overhead_us\": 1, \"rows_fit\": 1, \"rows_test\": 1, "
      "\"median_abs_rel_err\": 0, \"p90_abs_rel_err\": 0}";
  write(", \"m_half_rows\": 12", ",\n \"elementwise\": {\"mlp_silu_mul\": " + factors + "}");
  const GpuSpec ok = load_gpu_file((dir / "g.json").string(), "g");
  CHECK(ok.calibrated.gemm.n_half == 12);
  REQUIRE(ok.calibrated.elementwise.count("mlp_silu_mul") == 1);
  CHECK(ok.calibrated.elementwise.at("mlp_silu_mul").memory == 0.25);
  write(", \"m_half_rows\": -1", "");
  CHECK_THROWS_WITH_AS(load_gpu_file((dir / "g.json").string(), "g"), doctest::Contains("m_half_rows"), InputError);
  write(", \"m_half_rows\": 12, \"min_compute\": 0.5", "");
  CHECK(load_gpu_file((dir / "g.json").string(), "g").calibrated.gemm.min_compute == 0.5);
  // A floor above the GEMM's compute factor (0.8) is not a floor.
  write(", \"m_half_rows\": 12, \"min_compute\": 0.9", "");
  CHECK_THROWS_WITH_AS(load_gpu_file((dir / "g.json").string(), "g"), doctest::Contains("min_compute"), InputError);
  // Prefill attention's Hockney length has its own name, in its own unit; decode attention has none.
  write("", "");
  {
    std::ifstream in(dir / "g.json");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto with_key = [&](const std::string& cls, const std::string& key) {
      std::string t = text;
      const std::string from = "\"" + cls + "\": {\"compute\"";
      t.replace(t.find(from), from.size(), "\"" + cls + "\": {" + key + ", \"compute\"");
      std::ofstream(dir / "g.json") << t;
    };
    with_key("attention_prefill", "\"half_keys_per_query\": 24");
    CHECK(load_gpu_file((dir / "g.json").string(), "g").calibrated.attention_prefill.n_half == 24);
    with_key("attention_prefill", "\"m_half_rows\": 24");
    CHECK_THROWS_WITH_AS(load_gpu_file((dir / "g.json").string(), "g"), doctest::Contains("m_half_rows"), InputError);
    with_key("attention_decode", "\"half_keys_per_query\": 24");
    CHECK_THROWS_WITH_AS(load_gpu_file((dir / "g.json").string(), "g"), doctest::Contains("half_keys_per_query"),
                         InputError);
    with_key("attention_prefill", "\"half_keys_per_query\": -2");
    CHECK_THROWS_WITH_AS(load_gpu_file((dir / "g.json").string(), "g"), doctest::Contains("half_keys_per_query"),
                         InputError);
  }
  // gemv factors have no m to fall off with: the key is unknown there.
  write("", ",\n \"gemv\": {\"compute\": 0.5, \"memory\": 0.5, \"min_compute\": 0.2, \"overhead_us\": 1, "
            "\"rows_fit\": 1, \"rows_test\": 1, \"median_abs_rel_err\": 0, \"p90_abs_rel_err\": 0}");
  CHECK_THROWS_WITH_AS(load_gpu_file((dir / "g.json").string(), "g"), doctest::Contains("min_compute"), InputError);
  // A misspelt op name is an input error with a suggestion.
  write("", ",\n \"elementwise\": {\"mlp_silu_mull\": " + factors + "}");
  CHECK_THROWS_WITH_AS(load_gpu_file((dir / "g.json").string(), "g"), doctest::Contains("mlp_silu_mul"), InputError);
  write("", "");
  CHECK(load_gpu_file((dir / "g.json").string(), "g").calibrated.elementwise.empty());
  CHECK(!load_gpu_file((dir / "g.json").string(), "g").calibrated.gemv);
  // gemv: optional, parsed like a class (range-checked, no m_half_rows).
  write("", ",\n \"gemv\": " + factors);
  const GpuSpec with_gemv = load_gpu_file((dir / "g.json").string(), "g");
  REQUIRE(with_gemv.calibrated.gemv);
  CHECK(with_gemv.calibrated.gemv->memory == 0.25);
  write("", ",\n \"gemv\": {\"compute\": 0.5, \"memory\": 1.5, \"overhead_us\": 1, \"rows_fit\": 1, "
            "\"rows_test\": 1, \"median_abs_rel_err\": 0, \"p90_abs_rel_err\": 0}");
  CHECK_THROWS_WITH_AS(load_gpu_file((dir / "g.json").string(), "g"), doctest::Contains("gemv"), InputError);
  fs::remove_all(dir);
}

TEST_CASE("a GPU profile can take its calibrated factors from another profile, one step only") {
  const std::string gpus = std::string(PDSIM_SOURCE_DIR) + "/profiles/gpus/";
  // The shipped H200 takes the H100 SXM's (the same die): the very factors, and it says whose.
  const GpuSpec h200 = load_gpu_file(gpus + "h200.json", "h200");
  const GpuSpec h100 = load_gpu_file(gpus + "h100-sxm.json", "h100-sxm");
  REQUIRE(h200.calibrated.present);
  CHECK(h200.calibrated.from == "h100-sxm");
  CHECK(h100.calibrated.from.empty());
  CHECK(h200.calibrated.gemm.compute == h100.calibrated.gemm.compute);
  CHECK(h200.calibrated.attention_decode.memory == h100.calibrated.attention_decode.memory);
  CHECK(h200.calibrated.attention_prefill.n_half == h100.calibrated.attention_prefill.n_half);
  CHECK(h200.calibrated.allreduce.overhead_us == h100.calibrated.allreduce.overhead_us);
  CHECK(h200.hbm_gbytes_per_s != h100.hbm_gbytes_per_s);  // the ceilings stay the H200's own

  const fs::path dir = fs::temp_directory_path() / ("pdsim_cal_from_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const nlohmann::json base = parse_json_file(gpus + "h100-sxm.json");
  auto write = [&](const std::string& name, const nlohmann::json& calibrated) {
    nlohmann::json doc = base;
    doc["name"] = name;
    if (calibrated.is_null()) doc.erase("calibrated");
    else doc["calibrated"] = calibrated;
    std::ofstream(dir / (name + ".json")) << doc.dump();
  };
  auto error_of = [&](const std::string& name) {
    try {
      load_gpu_file((dir / (name + ".json")).string(), name);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  write("fitted", base["calibrated"]);
  write("bare", nullptr);
  write("a", {{"from", "fitted"}, {"why", "same die"}});
  CHECK(error_of("a").empty());
  write("b", {{"from", "a"}, {"why", "a chain"}});
  CHECK(error_of("b").find("followed one step only") != std::string::npos);
  write("c", {{"from", "bare"}, {"why", "no fit there"}});
  CHECK(error_of("c").find("$.calibrated.from: names \"bare\", which has no \"calibrated\" factors") != std::string::npos);
  write("d", {{"from", "nowhere"}, {"why", "typo"}});
  CHECK(error_of("d").find("$.calibrated.from: must name another GPU profile") != std::string::npos);
  write("e", {{"from", "e"}, {"why", "itself"}});
  CHECK(error_of("e").find("$.calibrated.from") != std::string::npos);
  write("f", {{"from", "fitted"}});
  CHECK(error_of("f").find("why") != std::string::npos);
  write("g", {{"from", "fitted"}, {"why", "x"}, {"gemm", base["calibrated"]["gemm"]}});
  CHECK(error_of("g").find("gemm") != std::string::npos);  // a reference or factors, not both
  fs::remove_all(dir);
}

// The oracle for h200's "from": the H200 measured on 2026-12-04 (cuBLAS bf16
// GEMMs, profiles/measured/h200-pdsim/gemm_bf16.csv, 132 rows of Llama-3.1
// 8B/70B shapes): the H100's fitted factors on the H200's own datasheet
// ceilings price them better than the datasheet assumptions did (median
// |error| 4.6% vs 9.9% on the first table of 2026-12-04, 5.2% vs 11.7% on the
// one in the file, measured that afternoon on another H200 whose GEMMs ran 3%
// faster at the median).
TEST_CASE("the H100's calibrated factors price a real H200's measured GEMMs better than its datasheet assumptions") {
  const std::string root = std::string(PDSIM_SOURCE_DIR);
  const GpuSpec h200 = load_gpu_file(root + "/profiles/gpus/h200.json", "h200");
  const RooflineCostModel calibrated(h200, 2, "test");
  const RooflineCostModel assumed(h200, 2, "test", /*use_calibration=*/false);
  const CsvRows csv =
      read_measured_csv(root + "/profiles/measured/h200-pdsim/gemm_bf16.csv", {"m", "n", "k", "latency_us"});
  std::vector<double> err_cal, err_assumed;
  for (const auto& r : csv.rows) {
    const Op op = gemm_row_op(r[0], r[1], r[2], 2);
    err_cal.push_back(std::fabs(calibrated.price(op).time_s / (r[3] * 1e-6) - 1));
    err_assumed.push_back(std::fabs(assumed.price(op).time_s / (r[3] * 1e-6) - 1));
  }
  REQUIRE(err_cal.size() == 132);
  auto median = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
  };
  MESSAGE("H200 cuBLAS GEMMs, median |error|: H100 factors " << median(err_cal) << ", datasheet assumptions "
                                                             << median(err_assumed));
  CHECK(median(err_cal) < 0.06);
  CHECK(median(err_cal) < 0.6 * median(err_assumed));
}

TEST_CASE("a GPU profile's rates and efficiency factors are range-checked") {
  // 1e-300 passed as "positive" and priced batches past the simulated clock.
  const fs::path dir = fs::temp_directory_path() / ("pdsim_gpu_ranges_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string src = std::string(PDSIM_SOURCE_DIR) + "/profiles/gpus/h100-sxm.json";
  auto error_with = [&](const std::vector<std::string>& path, double value) {
    nlohmann::json doc = parse_json_file(src);
    nlohmann::json* v = &doc;
    for (const auto& k : path) v = &(*v)[k];
    *v = value;
    const std::string file = (dir / "h100-sxm.json").string();
    std::ofstream(file) << doc.dump();
    try {
      load_gpu_file(file, "h100-sxm");
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error_with({"efficiency", "memory"}, 0.5) == "");
  CHECK(error_with({"efficiency", "memory"}, 1e-300).find(
            "$.efficiency.memory: is a fraction of peak and must be in [0.001, 1]") != std::string::npos);
  CHECK(error_with({"efficiency", "gemm"}, 1.5).find("$.efficiency.gemm: is a fraction of peak") != std::string::npos);
  CHECK(error_with({"calibrated", "attention_decode", "compute"}, 1e-300)
            .find("$.calibrated.attention_decode.compute: is a fraction of peak") != std::string::npos);
  CHECK(error_with({"hbm_gbytes_per_s"}, 1e-300).find("$.hbm_gbytes_per_s: must be in [0.001, ") !=
        std::string::npos);
  CHECK(error_with({"dense_tflops", "bf16"}, 1e-300).find("$.dense_tflops.bf16: must be in") != std::string::npos);
  CHECK(error_with({"intra_node_link", "gbytes_per_s_per_direction"}, 0).find("gbytes_per_s_per_direction: must be in") !=
        std::string::npos);
  CHECK(error_with({"nic_gbits_per_s"}, 1e30).find("$.nic_gbits_per_s: must be in") != std::string::npos);
  fs::remove_all(dir);
}
