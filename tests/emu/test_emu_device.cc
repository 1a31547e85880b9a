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

// One hazard planted per variant into a two-warp cp.async -> ldmatrix hand-off.
enum class Pipe { kCorrect, kNoWait, kNoBarrier, kOverwriteInUse, kWaitLeavesNewest, kExitInFlight };

// Warp `copier` copies 32 rows of 8 bf16 (row 31 zero-filled) into stage 0
// of dynamic shared memory with cp.async; after a barrier the other warp reads
// them with one ldmatrix.x4 into got (lane-major, 4 registers each). The
// emulator runs warp 0 first, so the two copiers give both orders. Returns
// the launch's error, "" when it kept every rule.
std::string copy_then_ldmatrix(Pipe pipe, int copier, const std::vector<__nv_bfloat16>& src,
                               std::vector<std::uint32_t>& got) {
  emu::Device dev;
  dev.allow_reads(src.data(), src.size() * sizeof(__nv_bfloat16));
  got.assign(32 * 4, 0);
  constexpr int kStage = 32 * 8;  // elements
  const bool ok = dev.launch(
      {1, 1, 1}, {64, 1, 1},
      [&] {
        auto* smem = static_cast<__nv_bfloat16*>(emu::Device::current().dynamic_shared());
        const bool copies = static_cast<int>(threadIdx.x / 32) == copier;
        const int lane = static_cast<int>(threadIdx.x % 32);
        if (copies) {
          cp_async_16(smem + lane * 8, src.data() + lane * 8, lane == 31 ? 0 : 16);
          cp_async_commit();
          if (pipe == Pipe::kWaitLeavesNewest || pipe == Pipe::kExitInFlight) {
            cp_async_16(smem + kStage + lane * 8, src.data() + kStage + lane * 8, 16);
            cp_async_commit();
            cp_async_wait<1>();  // stage 0 landed, stage 1 not
          } else if (pipe != Pipe::kNoWait) {
            cp_async_wait<0>();
          }
        }
        if (pipe != Pipe::kNoBarrier) __syncthreads();
        if (!copies) {
          std::uint32_t r[4];
          ldmatrix_x4(r, smem + (pipe == Pipe::kWaitLeavesNewest ? kStage : 0) + lane * 8);
          for (int i = 0; i < 4; ++i) got[lane * 4 + i] = r[i];
        } else if (pipe == Pipe::kOverwriteInUse) {
          cp_async_16(smem + lane * 8, src.data() + kStage + lane * 8, 16);  // refill the stage warp 1 reads
          cp_async_commit();
        }
        __syncthreads();
        if (pipe != Pipe::kExitInFlight) cp_async_wait<0>();
      },
      2 * kStage * sizeof(__nv_bfloat16));
  return ok ? std::string() : dev.error();
}

TEST_CASE("cuda kernels emulated: cp.async lands at its wait and the emulator race-checks it against ldmatrix") {
  std::vector<__nv_bfloat16> src(2 * 32 * 8);
  for (std::size_t i = 0; i < src.size(); ++i) src[i] = __float2bfloat16_rn(static_cast<float>(1 + i % 200));
  std::vector<std::uint32_t> got;
  const std::string not_landed = "cp.async into it landed (no cp.async.wait_group for it, or no __syncthreads after that)";
  for (int copier = 0; copier < 2; ++copier) {
    CAPTURE(copier);
    // The correct hand-off: ldmatrix's layout over the copied rows (lane l gave
    // row l's address; register i of lane (g, t) is row 8i + g, elements 2t, 2t + 1).
    REQUIRE(copy_then_ldmatrix(Pipe::kCorrect, copier, src, got) == "");
    int bad = 0;
    for (int lane = 0; lane < 32; ++lane)
      for (int i = 0; i < 4; ++i) {
        const int row = 8 * i + lane / 4, col = 2 * (lane % 4);
        const std::uint32_t lo = row == 31 ? 0u : src[row * 8 + col].x, hi = row == 31 ? 0u : src[row * 8 + col + 1].x;
        bad += got[lane * 4 + i] != (lo | hi << 16);
      }
    CHECK(bad == 0);

    // Each planted hazard is reported, in either order of the two warps: a
    // missing wait as a read of a copy in flight; a missing barrier as a read
    // of a copy landed in the same barrier interval (copier first) or as a
    // copy over a chunk read in it (reader first); an overwrite of a stage in
    // use as that, or as a read of the copy in flight.
    CHECK(copy_then_ldmatrix(Pipe::kNoWait, copier, src, got).find(not_landed) != std::string::npos);
    CHECK(copy_then_ldmatrix(Pipe::kWaitLeavesNewest, copier, src, got).find(not_landed) != std::string::npos);
    CHECK(copy_then_ldmatrix(Pipe::kExitInFlight, copier, src, got).find("exited with 1 cp.async copies in flight") !=
          std::string::npos);
    const std::string overwrite = "cp.async overwrites shared";
    const std::string no_barrier = copy_then_ldmatrix(Pipe::kNoBarrier, copier, src, got);
    CHECK(no_barrier.find(copier == 0 ? "which thread 0's cp.async filled since the last __syncthreads" : overwrite) !=
          std::string::npos);
    const std::string war = copy_then_ldmatrix(Pipe::kOverwriteInUse, copier, src, got);
    CHECK(war.find(copier == 0 ? overwrite : not_landed) != std::string::npos);
  }
}

// A plain shared-memory hand-off between the two warps of each of 4 blocks:
// warp `writer` stores, two warp shuffles (each a point where the emulator
// could switch warps), the other warp loads; the __syncthreads between them
// optional. Returns how many of the 128 loads did not see the stored value.
int plain_handoff_misses(int writer, bool barrier) {
  emu::Device dev;
  std::vector<float> got(4 * 32, 0.f);
  const bool ok = dev.launch(
      {4, 1, 1}, {64, 1, 1},
      [&] {
        float* s = static_cast<float*>(emu::Device::current().dynamic_shared());
        const int warp = static_cast<int>(threadIdx.x / 32), lane = static_cast<int>(threadIdx.x % 32);
        const float mine = 100.f * static_cast<float>(blockIdx.x) + static_cast<float>(lane);
        if (warp == writer) s[lane] = mine;
        float v = __shfl_xor_sync(kFull, mine, 1);
        v = __shfl_xor_sync(kFull, v, 1);
        if (barrier) __syncthreads();
        if (warp != writer) got[blockIdx.x * 32 + lane] = s[lane] - v + mine;  // v == mine
      },
      32 * sizeof(float));
  REQUIRE(ok);
  int misses = 0;
  for (int b = 0; b < 4; ++b)
    for (int lane = 0; lane < 32; ++lane) misses += !(got[b * 32 + lane] == 100.f * static_cast<float>(b) + lane);
  return misses;
}

TEST_CASE("cuda kernels emulated: a missing barrier between warps shows in one of the emulator's two warp orders") {
  for (int writer = 0; writer < 2; ++writer) {
    CAPTURE(writer);
    CHECK(plain_handoff_misses(writer, true) == 0);
    // Without the barrier the reading warp runs first, past both shuffles,
    // in the two blocks whose warp order puts it first: it reads poison.
    CHECK(plain_handoff_misses(writer, false) == 64);
  }
}

}  // namespace
