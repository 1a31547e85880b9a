// What compute devices this build can use. The CUDA part exists only when
// the build found nvcc; at run time a CUDA build still works without a GPU.
#pragma once
#include <string>
#include <vector>

namespace pdsim::kernels {

struct DeviceInfo {
  std::string name;
  double memory_gib = 0;
  int sm_count = 0;
  int compute_capability = 0;  // e.g. 90 for sm_90
};

bool built_with_cuda();
// Empty when built without CUDA or when no device is visible; `why` says which.
std::vector<DeviceInfo> cuda_devices(std::string* why = nullptr);

}  // namespace pdsim::kernels
