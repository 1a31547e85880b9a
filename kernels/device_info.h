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
// Whether the cuBLAS the CUDA backend loads at run time (not linked:
// kernels/cuda/cublas_api.h) loads and has every entry point it calls; needs
// no device. False without CUDA support; `why` says why, or on success
// which library loaded.
bool cublas_loads(std::string* why = nullptr);

}  // namespace pdsim::kernels
