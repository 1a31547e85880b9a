#include "sim/cost/cost_model.h"

#include <algorithm>

namespace pdsim {

RooflineCostModel::RooflineCostModel(const GpuSpec& gpu, int compute_bytes, const std::string& where,
                                     bool use_calibration)
    : gpu_(gpu),
      peak_flops_(gpu.peak_flops(compute_bytes, where)),
      fp32_flops_(gpu.peak_flops(4, where)),
      calibrated_(use_calibration && gpu.calibrated.present) {}

OpPrice RooflineCostModel::price(const Op& op) const {
  double overhead = op.kernels * gpu_.kernel_overhead_us * 1e-6;
  const double hbm = gpu_.hbm_gbytes_per_s * 1e9 * gpu_.eff_memory;
  const double link = gpu_.link_gbytes_per_s * 1e9 * gpu_.eff_link;
  const Calibration& cal = gpu_.calibrated;
  // Compute time, memory time and overhead of one instance for a table-backed class.
  auto classed = [&](double eff_compute, const RooflineFactors& fitted, double& compute_s, double& memory_s) {
    if (calibrated_) {
      compute_s = op.flops / (peak_flops_ * fitted.compute);
      memory_s = op.bytes / (gpu_.hbm_gbytes_per_s * 1e9 * fitted.memory);
      overhead = op.kernels * fitted.overhead_us * 1e-6;
    } else {
      compute_s = op.flops / (peak_flops_ * eff_compute);
      memory_s = op.bytes / hbm;
    }
  };
  double compute_s = 0, memory_s = 0;
  const char* bound = "memory";
  switch (op.op_class) {
    case OpClass::kGemm:
      classed(gpu_.eff_gemm, cal.gemm, compute_s, memory_s);
      break;
    case OpClass::kAttentionPrefill:
      classed(gpu_.eff_attention, cal.attention_prefill, compute_s, memory_s);
      break;
    case OpClass::kAttentionDecode:
      classed(gpu_.eff_attention, cal.attention_decode, compute_s, memory_s);
      break;
    case OpClass::kElementwise:
      // Elementwise math runs on CUDA cores (fp32 pipes), not tensor cores.
      compute_s = op.flops / (fp32_flops_ * gpu_.eff_gemm);
      memory_s = op.bytes / hbm;
      break;
    case OpClass::kAllReduce: {
      // Ring all-reduce moves 2(n-1)/n of the message over each GPU's link.
      const double n = op.group_gpus;
      const double bw = calibrated_ ? gpu_.link_gbytes_per_s * 1e9 * cal.allreduce.memory : link;
      if (calibrated_) overhead = op.kernels * cal.allreduce.overhead_us * 1e-6;
      memory_s = 2.0 * (n - 1) / n * op.bytes / bw;
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
