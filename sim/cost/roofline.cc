#include "sim/cost/cost_model.h"

#include <algorithm>

namespace pdsim {

RooflineCostModel::RooflineCostModel(const GpuSpec& gpu, int compute_bytes, const std::string& where)
    : gpu_(gpu), peak_flops_(gpu.peak_flops(compute_bytes, where)), fp32_flops_(gpu.peak_flops(4, where)) {}

OpPrice RooflineCostModel::price(const Op& op) const {
  const double overhead = op.kernels * gpu_.kernel_overhead_us * 1e-6;
  const double hbm = gpu_.hbm_gbytes_per_s * 1e9 * gpu_.eff_memory;
  const double link = gpu_.link_gbytes_per_s * 1e9 * gpu_.eff_link;
  double compute_s = 0, memory_s = 0;
  const char* bound = "memory";
  switch (op.op_class) {
    case OpClass::kGemm:
      compute_s = op.flops / (peak_flops_ * gpu_.eff_gemm);
      memory_s = op.bytes / hbm;
      break;
    case OpClass::kAttentionPrefill:
    case OpClass::kAttentionDecode:
      compute_s = op.flops / (peak_flops_ * gpu_.eff_attention);
      memory_s = op.bytes / hbm;
      break;
    case OpClass::kElementwise:
      // Elementwise math runs on CUDA cores (fp32 pipes), not tensor cores.
      compute_s = op.flops / (fp32_flops_ * gpu_.eff_gemm);
      memory_s = op.bytes / hbm;
      break;
    case OpClass::kAllReduce: {
      // Ring all-reduce moves 2(n-1)/n of the message over each GPU's link.
      const double n = op.group_gpus;
      memory_s = 2.0 * (n - 1) / n * op.bytes / link;
      bound = "link";
      break;
    }
    case OpClass::kP2P:
      memory_s = op.bytes / link;
      bound = "link";
      break;
  }
  double t = std::max(compute_s, memory_s);
  if (compute_s > memory_s) bound = "compute";
  if (overhead > t) bound = "overhead";
  return OpPrice{(t + overhead) * op.count, bound, "roofline"};
}

}  // namespace pdsim
