// Counter-based pseudo-random fill values shared by every backend: value i of
// a fill with `seed` is a hash of (seed, i), so the CPU and CUDA backends fill
// the same tensor with the same values (up to the storage dtype) and a device
// can fill gigabytes of weights in place instead of generating them on the host.
// Values are small and never zero: [-scale, -scale/10] U [scale/10, scale].
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define PDSIM_HOST_DEVICE __host__ __device__
#else
#define PDSIM_HOST_DEVICE
#endif

namespace pdsim::kernels {

PDSIM_HOST_DEVICE inline std::uint32_t mix32(std::uint32_t x) {
  // "lowbias32" integer hash (C. Wellons): full avalanche, cheap on a GPU.
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

PDSIM_HOST_DEVICE inline float random_fill_value(std::uint32_t seed, std::uint64_t i, float scale) {
  const std::uint32_t h = mix32(static_cast<std::uint32_t>(i) ^ mix32(static_cast<std::uint32_t>(i >> 32) + seed * 0x9e3779b9u));
  const float u = static_cast<float>(h >> 8) * (1.0f / 16777216.0f);  // [0, 1)
  const float a = u - 0.5f;
  return (a < 0 ? -1.0f : 1.0f) * scale * (0.1f + 1.8f * (a < 0 ? -a : a));
}

}  // namespace pdsim::kernels
