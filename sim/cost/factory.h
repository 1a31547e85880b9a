// The one place a cost model is chosen by name (scenario "cost_model",
// `pdsim cost --cost-model`).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "sim/cost/cost_model.h"
#include "sim/cost/real_kernel_options.h"
#include "sim/model/model_spec.h"

namespace pdsim {

// Names accepted by make_cost_model.
const std::vector<std::string>& cost_model_names();

// `where` names the config location for errors (e.g. "x.json: $.cluster.prefill.gpu").
// `data_dir` holds profiles/ (the profiled model reads profiles/measured/<gpu>/).
// `real` configures the real-kernel model ("real"; sim/cost/real_kernel.h).
std::unique_ptr<CostModel> make_cost_model(const std::string& name, const GpuSpec& gpu, const ModelSpec& model,
                                           const std::string& where, const std::string& data_dir = "",
                                           const RealKernelOptions& real = {});

}  // namespace pdsim
