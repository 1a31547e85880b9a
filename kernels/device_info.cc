#include "kernels/device_info.h"

namespace pdsim::kernels {

#ifdef PDSIM_HAVE_CUDA
bool built_with_cuda() { return true; }
std::vector<DeviceInfo> cuda_devices_impl(std::string* why);  // cuda/device_info_cuda.cu
std::vector<DeviceInfo> cuda_devices(std::string* why) { return cuda_devices_impl(why); }
bool cublas_loads_impl(std::string* why);  // cuda/cublas_api.cu
bool cublas_loads(std::string* why) { return cublas_loads_impl(why); }
#else
bool built_with_cuda() { return false; }
std::vector<DeviceInfo> cuda_devices(std::string* why) {
  if (why) *why = "this build has no CUDA support (nvcc was not found at configure time)";
  return {};
}
bool cublas_loads(std::string* why) {
  if (why) *why = "this build has no CUDA support (nvcc was not found at configure time)";
  return false;
}
#endif

}  // namespace pdsim::kernels
