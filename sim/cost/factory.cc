#include "sim/cost/factory.h"

#include "sim/core/error.h"

namespace pdsim {

const std::vector<std::string>& cost_model_names() {
  static const std::vector<std::string> names = {"roofline"};
  return names;
}

std::unique_ptr<CostModel> make_cost_model(const std::string& name, const GpuSpec& gpu, const ModelSpec& model,
                                           const std::string& where) {
  if (name == "roofline") return std::make_unique<RooflineCostModel>(gpu, model.weight_bytes, where);
  throw InputError(where, "unknown cost model \"" + name + "\"");
}

}  // namespace pdsim
