#include "sim/cost/factory.h"

#include "sim/core/error.h"
#include "sim/cost/profiled.h"
#include "sim/cost/real_kernel.h"

namespace pdsim {

const std::vector<std::string>& cost_model_names() {
  static const std::vector<std::string> names = {"roofline", "profiled", "real"};
  return names;
}

std::unique_ptr<CostModel> make_cost_model(const std::string& name, const GpuSpec& gpu, const ModelSpec& model,
                                           const std::string& where, const std::string& data_dir,
                                           const RealKernelOptions& real) {
  if (name == "roofline") return std::make_unique<RooflineCostModel>(gpu, model.weight_bytes, where);
  if (name == "profiled") {
    if (data_dir.empty())
      throw InputError(where, "the profiled cost model needs a data directory holding profiles/measured/");
    return std::make_unique<ProfiledCostModel>(load_measured_tables(data_dir, gpu.name, where), gpu, model.weight_bytes,
                                               model.kv_bytes, where);
  }
  if (name == "real") return std::make_unique<RealKernelCostModel>(gpu, model, real, where);
  throw InputError(where, "unknown cost model \"" + name + "\"");
}

}  // namespace pdsim
