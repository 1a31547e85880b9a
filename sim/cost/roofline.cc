#include "sim/cost/cost_model.h"

#include "sim/cost/calibration.h"

namespace pdsim {

RooflineCostModel::RooflineCostModel(const GpuSpec& gpu, int compute_bytes, const std::string& where,
                                     bool use_calibration)
    : gpu_(gpu),
      peak_flops_(gpu.peak_flops(compute_bytes, where)),
      fp32_flops_(gpu.peak_flops(4, where)),
      calibrated_(use_calibration && gpu.calibrated.present) {}

OpPrice RooflineCostModel::price(const Op& op) const {
  const double hbm = gpu_.hbm_gbytes_per_s * 1e9;
  const double link = gpu_.link_gbytes_per_s * 1e9;
  const Calibration& cal = gpu_.calibrated;
  // A table-backed class with fitted factors: the shared calibrated formula.
  auto fitted = [&](const RooflineFactors& f, double bandwidth, double peak) {
    const RooflineTerms t = calibrated_terms(f, op, peak, bandwidth);
    return OpPrice{t.total_s() * op.count, t.bound(op.op_class == OpClass::kAllReduce), "roofline"};
  };
  if (calibrated_) {
    switch (op.op_class) {
      case OpClass::kGemm: return fitted(op.m == 1 && cal.gemv ? *cal.gemv : cal.gemm, hbm, peak_flops_);
      case OpClass::kAttentionPrefill: return fitted(cal.attention_prefill, hbm, peak_flops_);
      case OpClass::kAttentionDecode: return fitted(cal.attention_decode, hbm, peak_flops_);
      case OpClass::kAllReduce: return fitted(cal.allreduce, link, peak_flops_);
      case OpClass::kElementwise:
        // Fitted on the fp32 pipes' peak, like the datasheet path below.
        if (auto it = cal.elementwise.find(op.name); it != cal.elementwise.end())
          return fitted(it->second, hbm, fp32_flops_);
        break;
      case OpClass::kP2P: break;  // no table: datasheet factors below
    }
  }
  // Datasheet peaks x assumed efficiencies.
  RooflineTerms t;
  t.overhead_s = op.kernels * gpu_.kernel_overhead_us * 1e-6;
  const bool link_bound = op.op_class == OpClass::kAllReduce || op.op_class == OpClass::kP2P;
  switch (op.op_class) {
    case OpClass::kGemm:
      t.compute_s = op.flops / (peak_flops_ * gpu_.eff_gemm);
      t.memory_s = op.bytes / (hbm * gpu_.eff_memory);
      break;
    case OpClass::kAttentionPrefill:
    case OpClass::kAttentionDecode:
      t.compute_s = op.flops / (peak_flops_ * gpu_.eff_attention);
      t.memory_s = op.bytes / (hbm * gpu_.eff_memory);
      break;
    case OpClass::kElementwise:
      // Elementwise math runs on CUDA cores (fp32 pipes), not tensor cores.
      t.compute_s = op.flops / (fp32_flops_ * gpu_.eff_gemm);
      t.memory_s = op.bytes / (hbm * gpu_.eff_memory);
      break;
    case OpClass::kAllReduce:
      t.memory_s = ring_allreduce_bytes(op) / (link * gpu_.eff_link);
      break;
    case OpClass::kP2P:
      t.memory_s = op.bytes / (link * gpu_.eff_link);
      break;
  }
  return OpPrice{t.total_s() * op.count, t.bound(link_bound), "roofline"};
}

}  // namespace pdsim
