// One GPU type's ceilings and prices, loaded from profiles/gpus/<name>.json.
// Every field there carries a citation in its "sources" object.
#pragma once
#include <map>
#include <optional>
#include <string>

namespace pdsim {

// Roofline factors for one op class, fitted to measured kernel tables
// (sim/cost/calibration.h). For the all-reduce, `memory` is the link
// efficiency and `compute` is unused.
// The JSON names of a "calibrated" class's Hockney length, shared by the
// profile parser and the two writers (pdsim profile, tools/fidelity.cc).
inline constexpr const char* kGemmHalfKey = "m_half_rows";
inline constexpr const char* kPrefillHalfKey = "half_keys_per_query";

struct RooflineFactors {
  double compute = 1, memory = 1, overhead_us = 0;
  // Hockney's half-performance length, in the class's own unit (0: none):
  // a GEMM's rows (JSON kGemmHalfKey) or prefill attention's keys per query
  // row (JSON kPrefillHalfKey); other classes have none.
  double n_half = 0;
  // GEMMs only: the compute efficiency a GEMM of few rows keeps, where the
  // m / (m + n_half) falloff stops (0: no floor). Libraries run small-m
  // products with another kernel whose efficiency does not keep falling
  // with m (Eigen on a CPU: about 0.6 of peak at m = 2..8, where the
  // falloff alone gave 0.47 at m = 2 and 0.76 at m = 8).
  double min_compute = 0;
};

// The "calibrated" object of a GPU profile: per-class factors and how well
// they fit. `present` is false when the profile has none (datasheet
// assumptions only).
struct Calibration {
  bool present = false;
  // The GPU profile whose fitted factors these are, where the profile took
  // them from another ("calibrated": {"from": NAME, "why": ...}: the same
  // chip under another name, e.g. the H200 is the H100's die); else empty.
  std::string from;
  RooflineFactors gemm, attention_prefill, attention_decode, allreduce;
  // Optional (written by `pdsim profile`): GEMMs of one row (m = 1: a decode
  // step of one sequence, its LM head) use these, fitted on the table's
  // m = 1 rows. A matrix-vector product is another kernel (Eigen's and
  // cuBLAS's gemv), which the GEMM class's one set of factors cannot also
  // follow (on a CPU it priced them up to 9% slow). Absent: the GEMM factors.
  std::optional<RooflineFactors> gemv;
  // Optional, per elementwise op name (written by `pdsim profile`, absent
  // from the vLLM-table fits): an op not listed keeps the datasheet factors.
  std::map<std::string, RooflineFactors> elementwise;
};

struct GpuSpec {
  std::string name;
  std::string device;
  std::map<std::string, double> dense_tflops;  // dtype -> dense TFLOP/s
  double hbm_gbytes_per_s = 0;
  double memory_gib = 0;
  std::string link_kind;
  double link_gbytes_per_s = 0;  // intra-node, per direction
  double nic_gbits_per_s = 0;
  double price_usd_per_hour = 0;
  // Attainable fraction of the datasheet peak, per op class.
  double eff_gemm = 1, eff_attention = 1, eff_memory = 1, eff_link = 1;
  double kernel_overhead_us = 0;
  Calibration calibrated;  // used by the roofline when present

  double memory_bytes() const { return memory_gib * 1073741824.0; }
  // Peak FLOP/s for an element size in bytes (2 -> bf16, 1 -> fp8, 4 -> fp32).
  // Throws InputError naming `where` when the GPU lacks that dtype.
  double peak_flops(int element_bytes, const std::string& where) const;
};

GpuSpec load_gpu_file(const std::string& path, const std::string& name);

// Resolves GPU names to profiles/gpus/<name>.json under a data directory and
// caches them.
class GpuCatalog {
 public:
  explicit GpuCatalog(std::string gpu_dir) : dir_(std::move(gpu_dir)) {}
  const GpuSpec& get(const std::string& name, const std::string& where);

 private:
  std::string dir_;
  std::map<std::string, GpuSpec> cache_;
};

}  // namespace pdsim
