// The block emulator itself (tests/emu/fake_cuda/emu_device.h), on tiny
// kernels written against the fake CUDA API: shuffles and barriers give
// CUDA's results, and each rule it enforces is reported when a kernel breaks
// it (so a kernel test passing on it means something).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <cuda_runtime.h>  // the fake one (tests/emu/fake_cuda)

namespace {

constexpr unsigned kFull = 0xffffffffu;

TEST_CASE("cuda kernels emulated: the block emulator gives CUDA's shuffle and barrier results") {
  emu::Device dev;
  // grid (2, 3), blocks of 96 threads (3 warps); out[block][thread].
  std::vector<long long> sum(6 * 96, -1), bcast(6 * 96, -1), neighbor(6 * 96, -1);
  const bool ok = dev.launch({2, 3, 1}, {96, 1, 1}, [&] {
    __shared__ int s_ids[96];
    const int t = static_cast<int>(threadIdx.x), lane = t % 32;
    const int block = static_cast<int>(blockIdx.y * gridDim.x + blockIdx.x);
    // Butterfly all-reduce over the warp: every lane gets the warp's sum.
    long long v = 1000 * block + t;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
    sum[block * 96 + t] = v;
    bcast[block * 96 + t] = __shfl_sync(kFull, 7 * t, 5);  // lane 5's value
    // Across warps through shared memory: write, barrier, read another warp's slot.
    s_ids[t] = 1000 * block + t;
    __syncthreads();
    neighbor[block * 96 + t] = s_ids[(t + 32) % 96];
    (void)lane;
  });
  INFO(dev.error());
  REQUIRE(ok);
  for (int b = 0; b < 6; ++b)
    for (int t = 0; t < 96; ++t) {
      const int w0 = t / 32 * 32;
      long long want = 0;
      for (int l = 0; l < 32; ++l) want += 1000 * b + w0 + l;
      CHECK(sum[b * 96 + t] == want);
      CHECK(bcast[b * 96 + t] == 7 * (w0 + 5));
      CHECK(neighbor[b * 96 + t] == 1000 * b + (t + 32) % 96);
    }
}

TEST_CASE("cuda kernels emulated: the block emulator reports divergent shuffles deadlocks and bad loads") {
  emu::Device dev;
  // Half a warp shuffles, the other half returns.
  CHECK_FALSE(dev.launch({1, 1, 1}, {64, 1, 1}, [&] {
    float v = 1.f;
    if (threadIdx.x % 32 < 16) v = __shfl_xor_sync(kFull, v, 1);
    (void)v;
  }));
  CHECK(dev.error().find("exited while lanes of its warp wait at a shuffle") != std::string::npos);
  // Half a warp at a shuffle, the other half at __syncthreads.
  CHECK_FALSE(dev.launch({1, 1, 1}, {64, 1, 1}, [&] {
    if (threadIdx.x % 32 < 16)
      __syncthreads();
    else
      (void)__shfl_xor_sync(kFull, 1, 1);
  }));
  CHECK(dev.error().find("deadlocked") != std::string::npos);
  // A partial mask (the kernels here always shuffle whole warps).
  CHECK_FALSE(dev.launch({1, 1, 1}, {32, 1, 1}, [&] { (void)__shfl_sync(0xffffu, 1, 0); }));
  CHECK(dev.error().find("shuffle mask") != std::string::npos);
  // Exited threads count as arrived at __syncthreads (sm_70+), so this is fine.
  CHECK(dev.launch({1, 1, 1}, {64, 1, 1}, [&] {
    if (threadIdx.x >= 32) return;
    __syncthreads();
  }));

  // 16-byte loads: aligned, and inside a registered buffer once there is one.
  alignas(16) std::uint32_t buf[16] = {};
  const auto* base = reinterpret_cast<const std::uint8_t*>(buf);
  CHECK_FALSE(dev.launch({1, 1, 1}, {32, 1, 1}, [&] { (void)__ldg(reinterpret_cast<const uint4*>(base + 4)); }));
  CHECK(dev.error().find("not 16-byte aligned") != std::string::npos);
  dev.allow_reads(buf, 32);
  dev.reset_counters();
  CHECK(dev.launch({1, 1, 1}, {32, 1, 1}, [&] { (void)__ldg(reinterpret_cast<const uint4*>(base + 16)); }));
  CHECK(dev.loads() == 32);
  CHECK_FALSE(dev.launch({1, 1, 1}, {32, 1, 1}, [&] { (void)__ldg(reinterpret_cast<const uint4*>(base + 32)); }));
  CHECK(dev.error().find("outside every registered buffer") != std::string::npos);
}

}  // namespace
