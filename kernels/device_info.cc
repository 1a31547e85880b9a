#include "kernels/device_info.h"

namespace pdsim::kernels {

#ifdef PDSIM_HAVE_CUDA
bool built_with_cuda() { return true; }
std::vector<DeviceInfo> cuda_devices_impl(std::string* why);  // cuda/device_info_cuda.cu
std::vector<DeviceInfo> cuda_devices(std::string* why) { return cuda_devices_impl(why); }
#else
bool built_with_cuda() { return false; }
std::vector<DeviceInfo> cuda_devices(std::string* why) {
  if (why) *why = "this build has no CUDA support (nvcc was not found at configure time)";
  return {};
}
#endif

}  // namespace pdsim::kernels
