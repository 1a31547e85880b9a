#include "sim/hw/gpu_spec.h"

#include <filesystem>
#include <vector>

#include "sim/config/json_object.h"
#include "sim/core/error.h"
#include "sim/model/ops.h"

namespace pdsim {

double GpuSpec::peak_flops(int element_bytes, const std::string& where) const {
  const char* dtype = element_bytes == 1 ? "fp8" : element_bytes == 2 ? "bf16" : "fp32";
  const auto it = dense_tflops.find(dtype);
  if (it == dense_tflops.end())
    throw InputError(where, "GPU " + name + " has no " + dtype + " throughput in its profile");
  return it->second * 1e12;
}

namespace {
// An efficiency factor. The floor keeps a typo (1e-30) from pricing batches
// beyond the simulated clock; fitted factors never go below 0.01.
double fraction_of_peak(JsonObject& obj, const char* key) {
  const double v = obj.number(key);
  if (!(v >= 1e-3 && v <= 1))
    obj.fail(key, "is a fraction of peak and must be in [0.001, 1], got " + std::to_string(v));
  return v;
}
// A peak rate (TFLOP/s, GB/s, Gb/s): from a slow CPU's to far past any GPU's.
double peak_rate(JsonObject& obj, const char* key) { return obj.number_in(key, 1e-3, 1e7); }

// One class of "calibrated": the factors plus the fit's bookkeeping
// (rows used, errors), which is read for validation and otherwise informational.
// `half_key`: the JSON name of the class's Hockney length (nullptr: it has
// none); `floor`: whether it may have min_compute (GEMMs).
RooflineFactors parse_factors(JsonObject obj, bool link, const char* half_key = nullptr, bool floor = false) {
  RooflineFactors f;
  if (link) {
    f.memory = fraction_of_peak(obj, "link");
  } else {
    f.compute = fraction_of_peak(obj, "compute");
    f.memory = fraction_of_peak(obj, "memory");
  }
  f.overhead_us = obj.number("overhead_us");
  if (f.overhead_us < 0) obj.fail("overhead_us", "must be >= 0");
  // Absent means 0 (no falloff, no floor).
  if (half_key) f.n_half = obj.number_in(half_key, 0, 1e6, 0);
  // A floor above `compute` would raise every GEMM's efficiency, not stop a falloff.
  if (floor) f.min_compute = obj.number_in("min_compute", 0, f.compute, 0);
  obj.positive_integer("rows_fit");
  obj.positive_integer("rows_test");
  obj.number("median_abs_rel_err");
  obj.number("p90_abs_rel_err");
  obj.finish();
  return f;
}

Calibration parse_calibration(JsonObject obj) {
  Calibration c;
  c.present = true;
  obj.string("method");
  obj.string("source");
  c.gemm = parse_factors(obj.object("gemm"), false, kGemmHalfKey, true);
  if (auto v = obj.optional_object("gemv")) c.gemv = parse_factors(*v, false);
  c.attention_prefill = parse_factors(obj.object("attention_prefill"), false, kPrefillHalfKey);
  c.attention_decode = parse_factors(obj.object("attention_decode"), false);
  c.allreduce = parse_factors(obj.object("allreduce"), true);
  if (auto e = obj.optional_object("elementwise")) {
    for (const char* name : kElementwiseOpNames)
      if (auto f = e->optional_object(name)) c.elementwise[name] = parse_factors(*f, false);
    e->finish();
  }
  obj.finish();
  return c;
}

// `follow_from`: whether "calibrated": {"from": ...} may name another profile
// (one step only: the profile it names must have fitted factors of its own,
// so no chain or cycle is followed).
GpuSpec load_gpu(const std::string& path, const std::string& name, bool follow_from) {
  const nlohmann::json root = parse_json_file(path);
  JsonObject top(root, path);
  GpuSpec g;
  g.name = top.string("name");
  if (g.name != name) top.fail("name", "is \"" + g.name + "\" but the file is for \"" + name + "\"");
  g.device = top.string("device");
  JsonObject tf = top.object("dense_tflops");
  for (const char* dtype : {"fp32", "tf32", "bf16", "fp16", "fp8"})
    if (tf.has(dtype)) g.dense_tflops[dtype] = peak_rate(tf, dtype);
  tf.finish();
  if (!g.dense_tflops.count("bf16")) tf.fail_here("needs at least \"bf16\"");
  g.hbm_gbytes_per_s = peak_rate(top, "hbm_gbytes_per_s");
  g.memory_gib = top.positive("memory_gib");
  JsonObject link = top.object("intra_node_link");
  g.link_kind = link.string("kind");
  g.link_gbytes_per_s = peak_rate(link, "gbytes_per_s_per_direction");
  link.finish();
  g.nic_gbits_per_s = peak_rate(top, "nic_gbits_per_s");
  g.price_usd_per_hour = top.number("price_usd_per_gpu_hour");
  if (g.price_usd_per_hour < 0) top.fail("price_usd_per_gpu_hour", "must be >= 0");
  JsonObject eff = top.object("efficiency");
  g.eff_gemm = fraction_of_peak(eff, "gemm");
  g.eff_attention = fraction_of_peak(eff, "attention");
  g.eff_memory = fraction_of_peak(eff, "memory");
  g.eff_link = fraction_of_peak(eff, "link");
  eff.finish();
  g.kernel_overhead_us = top.number("kernel_overhead_us");
  if (g.kernel_overhead_us < 0) top.fail("kernel_overhead_us", "must be >= 0");
  if (auto cal = top.optional_object("calibrated")) {
    if (cal->has("from")) {
      const std::string from = cal->string("from");
      cal->string("why");  // required: why another GPU's fit holds for this one
      cal->finish();
      const std::string from_path = (std::filesystem::path(path).parent_path() / (from + ".json")).string();
      if (!follow_from)
        cal->fail("from", "names \"" + from + "\", but this profile's factors are themselves taken from another "
                          "(\"from\" is followed one step only)");
      if (from == name || !std::filesystem::exists(from_path))
        cal->fail("from", "must name another GPU profile in the same directory (no " + from_path + ")");
      g.calibrated = load_gpu(from_path, from, false).calibrated;
      if (!g.calibrated.present) cal->fail("from", "names \"" + from + "\", which has no \"calibrated\" factors");
      g.calibrated.from = from;
    } else {
      g.calibrated = parse_calibration(*cal);
    }
  }
  top.object("sources");  // required: provenance of every number; content is free text
  top.finish();
  return g;
}
}  // namespace

GpuSpec load_gpu_file(const std::string& path, const std::string& name) { return load_gpu(path, name, true); }

const GpuSpec& GpuCatalog::get(const std::string& name, const std::string& where) {
  const auto it = cache_.find(name);
  if (it != cache_.end()) return it->second;
  const std::string path = dir_ + "/" + name + ".json";
  if (!std::filesystem::exists(path)) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir_, ec))
      if (entry.path().extension() == ".json") names.push_back(entry.path().stem().string());
    std::string msg = "unknown GPU \"" + name + "\" (no " + path + ")";
    const std::string near = nearest(name, names);
    if (!near.empty()) msg += "; did you mean \"" + near + "\"?";
    throw InputError(where, msg);
  }
  return cache_.emplace(name, load_gpu_file(path, name)).first->second;
}

}  // namespace pdsim
