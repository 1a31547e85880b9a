// The row-wise and elementwise kernels of kernels/cuda/elementwise_kernels.cuh
// (RMSNorm plain and with the residual add fused in, RoPE, SiLU-gate, KV
// append, random fill), their real device code run on the host by
// emu::Device (tests/emu/fake_cuda), against the float64 references (random
// fill: against kernels/random_fill.h on the host), bf16 and f32. Grid-stride kernels run with the launchers' grid (grid_for)
// and with a 2-block grid, so each thread takes several strides.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "kernels/cuda/elementwise_kernels.cuh"
#include "kernels/random_fill.h"
#include "kernels/reference.h"
#include "tests/emu/emu_test_util.h"

namespace kc = pdsim::kernels::cuda;
namespace ew = pdsim::kernels::cuda::elementwise;
namespace ref = pdsim::kernels::ref;
using kc::bf16;
using namespace pdsim::kernels::cuda::emu_test;

namespace {

constexpr emu::Dim3 kBlock{ew::kThreads, 1, 1};

// The grids a grid-stride kernel over n items runs with here: the launcher's, and 2 blocks.
std::vector<unsigned> grids_for(long long n) { return {ew::grid_for(n), 2u}; }

std::string name(const char* op, std::size_t bytes) { return std::string(bytes == 2 ? "bf16 " : "f32 ") + op; }

// Runs the kernel the launcher picks for p (rmsnorm_vecs_per_thread: 0 = the
// scalar kernel), and the scalar kernel too when that was not it.
template <class T>
bool launch_rmsnorm(emu::Device& dev, const kc::RmsNormParams<T>& p, int vecs) {
  const emu::Dim3 grid{static_cast<unsigned>(p.rows), 1, 1};
  switch (vecs) {
    case 1: return dev.launch(grid, kBlock, [&] { ew::rmsnorm_vec_kernel<T, 1>(p); });
    case 2: return dev.launch(grid, kBlock, [&] { ew::rmsnorm_vec_kernel<T, 2>(p); });
    case 4: return dev.launch(grid, kBlock, [&] { ew::rmsnorm_vec_kernel<T, 4>(p); });
    case 8: return dev.launch(grid, kBlock, [&] { ew::rmsnorm_vec_kernel<T, 8>(p); });
    default: return dev.launch(grid, kBlock, [&] { ew::rmsnorm_kernel<T>(p); });
  }
}

// want_vecs: the vectors per thread the launcher must pick for this shape
// (0: the scalar kernel). misalign: x and out start one element past a
// 16-byte boundary, which must send the launcher to the scalar kernel.
// add_residual: the residual add fused in (residual += x, then the norm of the
// stored sum); misalign_residual: only the residual is off the boundary.
template <class T>
void check_rmsnorm(long long rows, int hidden, int want_vecs, std::mt19937& rng, bool misalign = false,
                   bool add_residual = false, bool misalign_residual = false) {
  const int shift = misalign ? 1 : 0, rshift = misalign_residual ? 1 : 0;
  std::vector<float> xf = never_zero(rows * hidden + shift, rng, 3.0), wf = never_zero(hidden, rng);
  std::vector<float> rf = never_zero(rows * hidden + rshift, rng, 2.0);
  auto x = store<T>(xf), w = store<T>(wf), res = store<T>(rf);
  xf.erase(xf.begin(), xf.begin() + shift);
  rf.erase(rf.begin(), rf.begin() + rshift);
  auto out = poisoned<T>(rows * hidden + shift);
  kc::RmsNormParams<T> p{x.get() + shift, w.get(), out.get() + shift, rows, hidden, 1e-5f};
  if (add_residual) p.residual = res.get() + rshift;
  const int vecs = ew::rmsnorm_vecs_per_thread(p);
  const std::string what = name(add_residual ? "add + rmsnorm" : "rmsnorm", sizeof(T)) + " rows=" +
                           std::to_string(rows) + " hidden=" + std::to_string(hidden) +
                           (misalign ? " misaligned" : "") + (misalign_residual ? " residual misaligned" : "");
  INFO(what);
  CHECK(vecs == want_vecs);
  // Fused: the stored residual must be exactly what a separate add stores
  // (the fp32 sum rounded to T), and the output the norm of those values.
  // A plain norm leaves the residual as it was.
  std::vector<float> sum_f(rf.size());
  for (std::size_t i = 0; i < rf.size(); ++i) sum_f[i] = to_float(kc::from_f32<T>(xf[i] + rf[i]));
  const std::vector<double> want = ref::rmsnorm(add_residual ? sum_f : xf, wf, rows, hidden, 1e-5);
  const std::vector<float>& res_f = add_residual ? sum_f : rf;
  const std::vector<double> res_want(res_f.begin(), res_f.end());
  for (int run : vecs == 0 ? std::vector<int>{0} : std::vector<int>{vecs, 0}) {
    INFO((run ? "vectorized, vectors per thread " + std::to_string(run) : std::string("scalar kernel")));
    for (std::size_t i = 0; i < out.n; ++i) out[i] = kc::from_f32<T>(NAN);
    for (std::size_t i = 0; i < rf.size(); ++i) res[i + rshift] = kc::from_f32<T>(rf[i]);  // undo the last run's add
    emu::Device dev;
    const bool ok = launch_rmsnorm(dev, p, run);
    INFO("emulator: " << dev.error());
    REQUIRE(ok);
    Aligned<T> rows_out(want.size());  // the output proper, past the shift
    std::copy(out.get() + shift, out.get() + out.n, rows_out.get());
    check_close(what, rows_out, want);
    Aligned<T> res_out(rf.size());
    std::copy(res.get() + rshift, res.get() + res.n, res_out.get());
    check_close(what + (add_residual ? " residual" : " residual untouched"), res_out, res_want, 0.0, 0.0);
    if (misalign) CHECK(std::isnan(to_float(out[0])));  // before the output: never written
    if (misalign_residual) CHECK(to_float(res[0]) != 0.f);  // before the residual: untouched (never zero)
  }
}

template <class T>
void check_rope(long long tokens, int heads, int kv_heads, int hd, float theta, int max_pos, std::mt19937& rng) {
  std::uniform_int_distribution<int> pos_dist(0, max_pos);
  std::vector<std::int32_t> pos(tokens);
  for (auto& x : pos) x = pos_dist(rng);
  pos[0] = max_pos;
  for (unsigned grid : grids_for(ew::rope_items(tokens, heads, kv_heads, hd))) {
    std::vector<float> qf = never_zero(tokens * heads * hd, rng), kf = never_zero(tokens * kv_heads * hd, rng);
    auto q = store<T>(qf), k = store<T>(kf);
    kc::RopeParams<T> p{q.get(), k.get(), pos.data(), tokens, heads, kv_heads, hd, theta};
    const std::string what = name("rope", sizeof(T)) + " tokens=" + std::to_string(tokens) + " heads=" +
                             std::to_string(heads) + "/" + std::to_string(kv_heads) + " hd=" + std::to_string(hd) +
                             " max_pos=" + std::to_string(max_pos) + " grid=" + std::to_string(grid);
    INFO(what);
    emu::Device dev;
    const bool ok = dev.launch({grid, 1, 1}, kBlock, [&] { ew::rope_kernel<T>(p); });
    INFO("emulator: " << dev.error());
    REQUIRE(ok);
    // The kernel rotates in fp32 after an fp64 angle: f32 to ~1e-6 relative at any position.
    check_close(what + " q", q, ref::rope(qf, pos, heads, hd, theta));
    check_close(what + " k", k, ref::rope(kf, pos, kv_heads, hd, theta));
  }
}

// Both kernels when the vectorized one applies (want_vec: it must, for this shape).
template <class T>
void check_silu_gate(long long rows, int ffn, bool want_vec, std::mt19937& rng) {
  std::vector<float> gf = never_zero(rows * 2 * ffn, rng, 4.0);
  auto g = store<T>(gf);
  auto out = poisoned<T>(rows * ffn);
  const kc::SiluGateParams<T> p{g.get(), out.get(), rows, ffn};
  const bool vec = ew::silu_gate_vectorizable(p);
  CHECK(vec == want_vec);
  const std::vector<double> want = ref::silu_gate(gf, rows, ffn);
  for (bool run_vec : vec ? std::vector<bool>{true, false} : std::vector<bool>{false}) {
    const long long items = run_vec ? rows * (ffn / ew::kVec<T>) : rows * ffn;
    for (unsigned grid : grids_for(items)) {
      const std::string what = name("silu_gate", sizeof(T)) + (run_vec ? " vectorized" : " scalar") +
                               " rows=" + std::to_string(rows) + " ffn=" + std::to_string(ffn) +
                               " grid=" + std::to_string(grid);
      INFO(what);
      for (std::size_t i = 0; i < out.n; ++i) out[i] = kc::from_f32<T>(NAN);
      emu::Device dev;
      const bool ok = dev.launch({grid, 1, 1}, kBlock, [&] {
        if (run_vec)
          ew::silu_gate_vec_kernel<T>(p);
        else
          ew::silu_gate_kernel<T>(p);
      });
      INFO("emulator: " << dev.error());
      REQUIRE(ok);
      check_close(what, out, want);
    }
  }
}

template <class T>
void check_kv_append(long long tokens, int kv_heads, int hd, int slots, std::mt19937& rng) {
  // Distinct shuffled slots, every third token padding (-1).
  std::vector<std::int32_t> perm(slots);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<std::int32_t> slot(tokens);
  for (long long t = 0; t < tokens; ++t) slot[t] = t % 3 == 2 ? -1 : perm[t];
  for (bool run_vec : {false, true})
  for (unsigned grid : grids_for(tokens * kv_heads * hd / (run_vec ? ew::kVec<T> : 1))) {
    std::vector<float> kf = never_zero(tokens * kv_heads * hd, rng), vf = never_zero(kf.size(), rng);
    std::vector<float> kcf = never_zero(static_cast<std::size_t>(slots) * kv_heads * hd, rng, 2.0),
                       vcf = never_zero(kcf.size(), rng, 2.0);
    auto k = store<T>(kf), v = store<T>(vf), kcache = store<T>(kcf), vcache = store<T>(vcf);
    kc::KvAppendParams<T> p{k.get(), v.get(), slot.data(), kcache.get(), vcache.get(), tokens, kv_heads, hd};
    // Every row here is whole 16-byte vectors (hd 64 and 128): the launcher vectorizes.
    CHECK(ew::kv_append_vectorizable(p));
    const std::string what = name("kv_append", sizeof(T)) + (run_vec ? " vectorized" : " scalar") + " tokens=" + std::to_string(tokens) +
                             " kv_heads=" + std::to_string(kv_heads) + " hd=" + std::to_string(hd) +
                             " grid=" + std::to_string(grid);
    INFO(what);
    emu::Device dev;
    const bool ok = dev.launch({grid, 1, 1}, kBlock, [&] {
      if (run_vec)
        ew::kv_append_kernel<T, true>(p);
      else
        ew::kv_append_kernel<T, false>(p);
    });
    INFO("emulator: " << dev.error());
    REQUIRE(ok);
    // The reference appends every token it is given: give it the non-padding ones.
    const std::size_t row = static_cast<std::size_t>(kv_heads) * hd;
    std::vector<float> kl, vl;
    std::vector<std::int32_t> live;
    for (long long t = 0; t < tokens; ++t)
      if (slot[t] >= 0) {
        live.push_back(slot[t]);
        kl.insert(kl.end(), kf.begin() + t * row, kf.begin() + (t + 1) * row);
        vl.insert(vl.end(), vf.begin() + t * row, vf.begin() + (t + 1) * row);
      }
    std::vector<double> kref(kcf.begin(), kcf.end()), vref(vcf.begin(), vcf.end());
    ref::kv_append(kl, vl, live, kv_heads, hd, kref, vref);
    check_close(what + " k", kcache, kref, 0.0, 0.0);  // a copy: exact
    check_close(what + " v", vcache, vref, 0.0, 0.0);
  }
}

template <class T>
void check_fill_random(long long n, float scale, std::uint32_t seed) {
  for (unsigned grid : grids_for(n)) {
    auto out = poisoned<T>(n);
    const std::string what = name("fill_random", sizeof(T)) + " n=" + std::to_string(n) +
                             " grid=" + std::to_string(grid);
    INFO(what);
    emu::Device dev;
    const bool ok = dev.launch({grid, 1, 1}, kBlock, [&] { ew::fill_random_kernel<T>(out.get(), n, scale, seed); });
    INFO("emulator: " << dev.error());
    REQUIRE(ok);
    std::vector<double> want(n);
    for (long long i = 0; i < n; ++i)  // the host function, rounded to T as the kernel stores it
      want[i] = to_float(kc::from_f32<T>(pdsim::kernels::random_fill_value(seed, static_cast<std::uint64_t>(i), scale)));
    check_close(what, out, want, 0.0, 0.0);
  }
}

template <class T>
void check_all(std::mt19937& rng) {
  // {hidden, vectors per thread the launcher must pick in bf16, in f32}: hidden below
  // and not a multiple of the block, not a multiple of the 16-byte vector (scalar
  // kernel), each of 1, 2, 4, 8 vectors per thread, and too wide for the registers.
  const bool is_bf16 = sizeof(T) == 2;
  const struct { int hidden, bf16_vecs, f32_vecs; } norms[] = {
      {1000, 1, 1}, {4096, 2, 4}, {64, 1, 1}, {1001, 0, 0}, {100, 0, 1}, {8192, 4, 8}, {16384, 8, 0}, {16392, 0, 0}};
  for (bool add : {false, true}) {
    for (const auto& n : norms)
      check_rmsnorm<T>(n.hidden > 8192 ? 2 : 3, n.hidden, is_bf16 ? n.bf16_vecs : n.f32_vecs, rng, false, add);
    check_rmsnorm<T>(3, 4096, 0, rng, /*misalign=*/true, add);
  }
  check_rmsnorm<T>(3, 4096, 0, rng, false, /*add_residual=*/true, /*misalign_residual=*/true);
  for (int hd : {64, 128}) {
    check_rope<T>(7, 4, 2, hd, 10000.f, 131071, rng);  // positions up to 2^17 - 1
    check_rope<T>(5, 2, 1, hd, 500000.f, 3, rng);
    check_rope<T>(3, 14, 3, hd, 500000.f, 4096, rng);  // 17 heads: two full chunks of 8 and one of 1
    check_kv_append<T>(9, 2, hd, 20, rng);
  }
  check_silu_gate<T>(5, 300, !is_bf16, rng);  // 300: a multiple of 4 floats, not of 8 bf16
  check_silu_gate<T>(3, 1024, true, rng);
  check_silu_gate<T>(2, 301, false, rng);
  check_fill_random<T>(1000, 0.5f, 12345u);
}

}  // namespace

// Rows not a multiple of the 256-thread block, head dims 64 and 128, RoPE
// positions past 1e5 (where an fp32 angle would be ~1e-2 rad off), padding
// tokens in KV append, bf16 and f32.
TEST_CASE("cuda kernels emulated: elementwise kernels match the float64 references in bf16 and f32") {
  std::mt19937 rng(4321);
  SUBCASE("bf16") { check_all<bf16>(rng); }
  SUBCASE("f32") { check_all<float>(rng); }
}
