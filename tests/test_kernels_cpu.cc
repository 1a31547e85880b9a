// Every kernel of kernels/backend.h against its float64 reference
// (kernels/reference.h), on every available backend: the CPU backend always,
// the CUDA backend when this build and machine have one (else a message says
// why it is skipped). Inputs are random and never zero; outputs are poisoned
// with NaN before each kernel runs; shapes are ragged (lengths that are not
// multiples of block_tokens or of the CPU's 64-row tiles, GQA ratios 1-8,
// several sequences of different lengths). The reference sees the inputs as
// the backend stores them (uploaded then downloaded, i.e. rounded to bf16 on
// a bf16 backend), so the tolerance only covers the kernel's arithmetic.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <doctest/doctest.h>

#include "kernels/backend.h"
#include "kernels/random_fill.h"
#include "kernels/reference.h"
#include "kernel_test_util.h"

namespace k = pdsim::kernels;
using namespace pdsim::kernels::test;

namespace {

std::vector<std::unique_ptr<k::Backend>> backends() {
  std::vector<std::unique_ptr<k::Backend>> out;
  out.push_back(k::make_cpu_backend());
  std::string why;
  auto cuda = k::make_cuda_backend(&why);
  if (cuda) {
    out.push_back(std::move(cuda));
  } else {
    static bool said = false;
    if (!said) std::printf("CUDA backend skipped: %s\n", why.c_str());
    said = true;
  }
  return out;
}

std::vector<std::int32_t> cu_of(const std::vector<int>& lens) {
  std::vector<std::int32_t> cu{0};
  for (int l : lens) cu.push_back(cu.back() + l);
  return cu;
}

}  // namespace

TEST_CASE("kernels: gemm matches the float64 reference on ragged shapes") {
  std::mt19937 rng(1);
  for (auto& b : backends()) {
    for (auto [m, n, kk] : std::vector<std::tuple<std::int64_t, std::int64_t, std::int64_t>>{{1, 64, 64}, {7, 33, 65}, {130, 96, 200},
                                                                     {3, 1000, 17}, {257, 129, 512}}) {
      auto xh = random_values(static_cast<std::size_t>(m * kk), rng);
      auto wh = random_values(static_cast<std::size_t>(n * kk), rng, 0.1f);
      auto x = put(*b, {m, kk}, xh);
      auto w = put(*b, {n, kk}, wh);
      auto y = poisoned(*b, {m, n});
      b->gemm({&x, &w, &y, m, n, kk});
      check_close(b->name() + " gemm " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(kk),
                  get(*b, y), k::ref::gemm(xh, wh, m, n, kk), tol_for(*b));
    }
  }
}

TEST_CASE("kernels: fill_random gives every backend the same small nonzero values") {
  for (auto& b : backends()) {
    const std::int64_t n = 4099;  // not a multiple of any block size
    auto t = poisoned(*b, {n});
    b->fill_random(t, 0.5f, 42);
    const auto got = get(*b, t);
    std::vector<double> want(static_cast<std::size_t>(n));
    int negative = 0, out_of_range = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      want[i] = k::random_fill_value(42, static_cast<std::uint64_t>(i), 0.5f);
      out_of_range += std::fabs(want[i]) < 0.05 - 1e-7 || std::fabs(want[i]) > 0.5 + 1e-7;
      negative += want[i] < 0;
    }
    CHECK(out_of_range == 0);
    check_close(b->name() + " fill_random", got, want, tol_for(*b));
    CHECK(negative > n / 3);  // both signs, roughly balanced
    CHECK(negative < 2 * n / 3);
    auto other = poisoned(*b, {n});
    b->fill_random(other, 0.5f, 43);
    const auto got43 = get(*b, other);
    int same = 0;
    for (std::int64_t i = 0; i < n; ++i) same += got43[i] == got[i];
    CHECK(same < n / 100);  // another seed, other values
  }
}

TEST_CASE("kernels: CPU backends with different thread counts run GEMMs side by side") {
  // Each backend keeps its own thread count (no process-wide Eigen setting
  // written per call), so two can run at once, as two real-kernel runs do.
  const std::int64_t m = 96, n = 640, kk = 160;
  std::mt19937 rng(7);
  auto xh = random_values(static_cast<std::size_t>(m * kk), rng);
  auto wh = random_values(static_cast<std::size_t>(n * kk), rng, 0.1f);
  const auto ref = k::ref::gemm(xh, wh, m, n, kk);
  std::vector<float> got[2];
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      auto b = k::make_cpu_backend(t + 1);
      auto xc = xh, wc = wh;
      auto x = put(*b, {m, kk}, xc);
      auto w = put(*b, {n, kk}, wc);
      auto y = poisoned(*b, {m, n});
      for (int rep = 0; rep < 20; ++rep) b->gemm({&x, &w, &y, m, n, kk});
      got[t] = get(*b, y);
    });
  for (auto& th : threads) th.join();
  check_close("1-thread backend", got[0], ref, tol_for(k::DType::kF32));
  check_close("2-thread backend", got[1], ref, tol_for(k::DType::kF32));
}

TEST_CASE("kernels: prefill attention matches the reference for GQA ratios 1 2 4 8 and ragged sequences") {
  std::mt19937 rng(2);
  for (auto& b : backends())
    for (int kv_heads : {8, 4, 2, 1})
      for (int hd : {64, 128}) run_prefill(*b, b->compute_dtype(), 8, kv_heads, hd, {17, 1, 131, 70, 64}, rng);
}

// Chunked prefill / prefix caching: each sequence's new tokens attend to a
// cached prefix (keys laid out prefix first, cu_seqlens_k) and causally to
// each other. Prefixes off and on the 64-row tiles, 0 beside non-zero.
TEST_CASE("kernels: prefill attention after a cached prefix matches the reference") {
  std::mt19937 rng(12);
  for (auto& b : backends())
    for (int kv_heads : {8, 2})
      for (int hd : {64, 128})
        run_prefill(*b, b->compute_dtype(), 8, kv_heads, hd, {17, 1, 131, 70}, rng, nullptr, {40, 300, 0, 64});
  // Fewer keys than queries is refused (the CPU backend checks the offsets on the host).
  auto b = k::make_cpu_backend(1);
  std::vector<float> x(2 * 4 * 8, 0.5f);
  auto q = put(*b, {2, 4, 8}, x);
  auto kt = put(*b, {2, 4, 8}, x);
  auto out = poisoned(*b, {2, 4, 8});
  auto cut = put_i32(*b, {3}, std::vector<std::int32_t>{0, 1, 2});
  auto cukt = put_i32(*b, {3}, std::vector<std::int32_t>{0, 2, 2});
  CHECK_THROWS(b->prefill_attention({&q, &kt, &kt, &cut, &out, 2, 4, 4, 8, 2, 1, &cukt, 2}));
}

TEST_CASE("kernels: decode attention matches the reference through a shuffled block table") {
  std::mt19937 rng(3);
  for (auto& b : backends())
    for (int kv_heads : {8, 4, 2, 1})
      for (int block_tokens : {16, 32}) {
        INFO(b->name() << " kv_heads=" << kv_heads << " block_tokens=" << block_tokens);
        run_decode(*b, b->compute_dtype(), 8, kv_heads, 64, block_tokens, {1, 15, 16, 17, 100, 257, 33}, rng);
      }
}

TEST_CASE("kernels: kv append writes exactly the mapped slots") {
  std::mt19937 rng(4);
  // (2, 64): rows of whole 16-byte vectors (the CUDA backend's vectorized
  // kernel); (1, 36): 72-byte rows in bf16 (its scalar kernel).
  for (auto& b : backends())
  for (auto [kv_heads, hd] : {std::pair{2, 64}, std::pair{1, 36}}) {
    const int block_tokens = 16, num_blocks = 6;
    const std::int64_t T = 37, slots_total = num_blocks * block_tokens;
    std::vector<std::int32_t> slots(slots_total);
    std::iota(slots.begin(), slots.end(), 0);
    std::shuffle(slots.begin(), slots.end(), rng);
    slots.resize(T);
    auto kh = random_values(static_cast<std::size_t>(T * kv_heads * hd), rng);
    auto vh = random_values(static_cast<std::size_t>(T * kv_heads * hd), rng);
    auto kt = put(*b, {T, kv_heads, hd}, kh);
    auto v = put(*b, {T, kv_heads, hd}, vh);
    auto sm = put_i32(*b, {T}, slots);
    auto kc = poisoned(*b, {num_blocks, block_tokens, kv_heads, hd});
    auto vc = poisoned(*b, {num_blocks, block_tokens, kv_heads, hd});
    b->kv_append({&kt, &v, &sm, &kc, &vc, T, kv_heads, hd, block_tokens});
    std::vector<double> kref(static_cast<std::size_t>(kc.numel()), std::numeric_limits<double>::quiet_NaN());
    std::vector<double> vref = kref;
    k::ref::kv_append(kh, vh, slots, kv_heads, hd, kref, vref);
    // Written slots equal the inputs exactly; every other slot is still NaN.
    for (auto [got, ref, what] : {std::tuple{get(*b, kc), &kref, "k"}, std::tuple{get(*b, vc), &vref, "v"}}) {
      std::size_t bad = 0;
      for (std::size_t i = 0; i < got.size(); ++i) {
        const double r = (*ref)[i];
        if (std::isnan(r) ? !std::isnan(got[i]) : got[i] != r) ++bad;
      }
      INFO(b->name() << " kv_append kv_heads=" << kv_heads << " hd=" << hd << " " << what << " cache: " << bad
                     << " wrong elements");
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("kernels: rmsnorm plain and with the residual add fused in matches the reference") {
  std::mt19937 rng(5);
  for (auto& b : backends())
    for (bool add_residual : {false, true})
      // On CUDA: 1, 4 and 8 16-byte vectors per thread held in registers, and
      // the scalar kernel for a row not whole vectors (1001) or too wide (16392).
      for (auto [rows, hidden] : std::vector<std::pair<std::int64_t, int>>{
               {1, 64}, {5, 200}, {33, 512}, {3, 1001}, {2, 8192}, {2, 16384}, {1, 16392}})
        check_rmsnorm(*b, b->name(), rows, hidden, rng, add_residual);
}

TEST_CASE("kernels: rope matches the reference on q and k") {
  std::mt19937 rng(6);
  for (auto& b : backends()) {
    for (float theta : {10000.0f, 500000.0f}) {
      for (auto [heads, kv_heads, hd] : std::vector<std::tuple<int, int, int>>{{8, 2, 64}, {4, 4, 128}, {8, 1, 32}}) {
        const std::int64_t T = 9;
        std::vector<std::int32_t> pos(T);
        std::uniform_int_distribution<int> pd(0, 4095);
        for (auto& p : pos) p = pd(rng);
        pos[0] = 0;
        auto qh = random_values(static_cast<std::size_t>(T * heads * hd), rng);
        auto kh = random_values(static_cast<std::size_t>(T * kv_heads * hd), rng);
        auto q = put(*b, {T, heads, hd}, qh);
        auto kt = put(*b, {T, kv_heads, hd}, kh);
        auto p = put_i32(*b, {T}, pos);
        b->rope({&q, &kt, &p, T, heads, kv_heads, hd, theta});
        const std::string what = b->name() + " rope theta=" + std::to_string(theta) + " hd=" + std::to_string(hd);
        check_close(what + " q", get(*b, q), k::ref::rope(qh, pos, heads, hd, theta), tol_for(*b));
        check_close(what + " k", get(*b, kt), k::ref::rope(kh, pos, kv_heads, hd, theta), tol_for(*b));
      }
    }
  }
}

TEST_CASE("kernels: silu gate matches the reference") {
  std::mt19937 rng(7);
  for (auto& b : backends())
    for (auto [rows, ffn] : std::vector<std::pair<std::int64_t, int>>{{1, 64}, {7, 300}, {20, 1408}})
      check_silu_gate(*b, b->name(), rows, ffn, rng);
}

TEST_CASE("kernels: copy reproduces the source exactly and refuses mismatched tensors") {
  std::mt19937 rng(9);
  for (auto& b : backends()) {
    // The last spans several CPU chunks (1 MiB) and ends mid-chunk.
    for (std::int64_t n : {1, 1000, (5 << 18) + 17}) {
      auto values = random_values(static_cast<std::size_t>(n), rng);
      auto src = put(*b, {n}, values);
      auto dst = poisoned(*b, {n});
      b->copy(dst, src);
      const auto want = get(*b, src);
      const auto got = get(*b, dst);
      CHECK_MESSAGE(std::equal(want.begin(), want.end(), got.begin()), b->name() << " copy of " << n << " differs");
    }
    auto a = poisoned(*b, {10}), c = poisoned(*b, {11});
    CHECK_THROWS(b->copy(a, c));
  }
}

TEST_CASE("kernels: copy_columns takes exactly a column range of each row") {
  std::mt19937 rng(10);
  for (auto& b : backends()) {
    // A fused q|k|v projection of 37 rows (ragged), 4 + 2 + 2 heads of 24 dims;
    // and one range wide enough for the CPU's threaded path.
    struct Shape {
      std::int64_t rows, src_cols, col0, cols;
    };
    for (const Shape s : {Shape{37, 192, 0, 96}, Shape{37, 192, 96, 48}, Shape{37, 192, 144, 48}, Shape{1, 192, 144, 48},
                          Shape{1100, 600, 17, 301}}) {
      INFO("rows " << s.rows << " columns " << s.col0 << " + " << s.cols << " of " << s.src_cols);
      auto values = random_values(static_cast<std::size_t>(s.rows * s.src_cols), rng);
      auto src = put(*b, {s.rows, s.src_cols}, values);
      auto dst = poisoned(*b, {s.rows, s.cols});
      b->copy_columns({&src, &dst, s.rows, s.src_cols, s.col0, s.cols});
      const auto got = get(*b, dst);
      std::size_t bad = 0;
      for (std::int64_t r = 0; r < s.rows; ++r)
        for (std::int64_t c = 0; c < s.cols; ++c)
          bad += !(got[r * s.cols + c] == values[r * s.src_cols + s.col0 + c]);  // NaN (unwritten) fails too
      CHECK_MESSAGE(bad == 0, b->name() << ": " << bad << " elements differ");
    }
    auto src = poisoned(*b, {4, 8}), dst = poisoned(*b, {4, 4});
    CHECK_THROWS(b->copy_columns({&src, &dst, 4, 8, 5, 4}));  // columns 5..8 of 8
    CHECK_THROWS(b->copy_columns({&src, &dst, 5, 8, 0, 4}));  // more rows than src holds
  }
}

TEST_CASE("kernels: the harness catches a wrong kernel") {
  // The comparison must be able to fail: a reference for the wrong shape
  // (transposed weights) is out of tolerance.
  std::mt19937 rng(8);
  auto b = k::make_cpu_backend();
  const std::int64_t m = 4, n = 5, kk = 5;
  auto xh = random_values(m * kk, rng);
  auto wh = random_values(n * kk, rng);
  auto x = put(*b, {m, kk}, xh);
  auto w = put(*b, {n, kk}, wh);
  auto y = poisoned(*b, {m, n});
  b->gemm({&x, &w, &y, m, n, kk});
  std::vector<float> wt(wh.size());
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < kk; ++j) wt[j * n + i] = wh[i * kk + j];
  const auto got = get(*b, y);
  const auto wrong = k::ref::gemm(xh, wt, m, n, kk);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < got.size(); ++i) bad += std::fabs(got[i] - wrong[i]) > 2e-4 + 1e-3 * std::fabs(wrong[i]);
  CHECK(bad > 0);
  // And an un-run kernel leaves NaN, which never passes.
  auto z = poisoned(*b, {m, n});
  const auto zz = get(*b, z);
  CHECK(std::isnan(zz[0]));
}
