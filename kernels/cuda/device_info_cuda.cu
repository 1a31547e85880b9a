#include <cuda_runtime.h>

#include "kernels/device_info.h"

namespace pdsim::kernels {

std::vector<DeviceInfo> cuda_devices_impl(std::string* why) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    if (why) *why = std::string("no CUDA device visible (") + cudaGetErrorString(err) + ")";
    return {};
  }
  std::vector<DeviceInfo> out;
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    out.push_back({prop.name, static_cast<double>(prop.totalGlobalMem) / 1073741824.0, prop.multiProcessorCount,
                   prop.major * 10 + prop.minor});
  }
  return out;
}

}  // namespace pdsim::kernels
