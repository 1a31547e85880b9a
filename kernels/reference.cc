#include "kernels/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>


namespace pdsim::kernels::ref {

std::vector<double> gemm(const std::vector<float>& x, const std::vector<float>& w, std::int64_t m, std::int64_t n,
                         std::int64_t k) {
  std::vector<double> y(static_cast<std::size_t>(m * n));
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (std::int64_t p = 0; p < k; ++p) acc += static_cast<double>(x[i * k + p]) * w[j * k + p];
      y[i * n + j] = acc;
    }
  return y;
}

namespace {
// out_row = softmax(scale * q . K^T) . V over `len` keys fetched by key(t), value(t).
template <class KeyFn, class ValFn>
void attend(const float* q, std::int64_t len, int hd, KeyFn key, ValFn value, double* out) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  std::vector<double> s(static_cast<std::size_t>(len));
  double mx = -std::numeric_limits<double>::infinity();
  for (std::int64_t t = 0; t < len; ++t) {
    const float* kt = key(t);
    double acc = 0;
    for (int d = 0; d < hd; ++d) acc += static_cast<double>(q[d]) * kt[d];
    s[t] = acc * scale;
    mx = std::max(mx, s[t]);
  }
  double sum = 0;
  for (auto& e : s) sum += (e = std::exp(e - mx));
  for (int d = 0; d < hd; ++d) out[d] = 0;
  for (std::int64_t t = 0; t < len; ++t) {
    const float* vt = value(t);
    for (int d = 0; d < hd; ++d) out[d] += s[t] / sum * vt[d];
  }
}
}  // namespace

std::vector<double> prefill_attention(const std::vector<float>& q, const std::vector<float>& k,
                                      const std::vector<float>& v, const std::vector<std::int32_t>& cu, int heads,
                                      int kv_heads, int hd, const std::vector<std::int32_t>& cu_k_in) {
  const std::int64_t T = cu.back();
  const std::vector<std::int32_t>& cu_k = cu_k_in.empty() ? cu : cu_k_in;
  std::vector<double> out(static_cast<std::size_t>(T * heads * hd));
  const int group = heads / kv_heads;
  for (std::size_t s = 0; s + 1 < cu.size(); ++s)
    for (std::int64_t i = cu[s]; i < cu[s + 1]; ++i)
      for (int h = 0; h < heads; ++h) {
        const int kvh = h / group;
        const std::int64_t start = cu_k[s];
        const std::int64_t prefix = (cu_k[s + 1] - cu_k[s]) - (cu[s + 1] - cu[s]);
        attend(
            &q[(i * heads + h) * hd], prefix + (i - cu[s]) + 1, hd,
            [&](std::int64_t t) { return &k[((start + t) * kv_heads + kvh) * hd]; },
            [&](std::int64_t t) { return &v[((start + t) * kv_heads + kvh) * hd]; }, &out[(i * heads + h) * hd]);
      }
  return out;
}

std::vector<double> decode_attention(const std::vector<float>& q, const std::vector<float>& kc,
                                     const std::vector<float>& vc, const std::vector<std::int32_t>& block_table,
                                     const std::vector<std::int32_t>& lens, int heads, int kv_heads, int hd,
                                     int block_tokens, int max_blocks) {
  const std::int64_t B = static_cast<std::int64_t>(lens.size());
  std::vector<double> out(static_cast<std::size_t>(B * heads * hd));
  const int group = heads / kv_heads;
  for (std::int64_t b = 0; b < B; ++b)
    for (int h = 0; h < heads; ++h) {
      const int kvh = h / group;
      auto slot = [&](std::int64_t t) {
        const std::int64_t blk = block_table[b * max_blocks + t / block_tokens];
        return ((blk * block_tokens + t % block_tokens) * kv_heads + kvh) * hd;
      };
      attend(
          &q[(b * heads + h) * hd], lens[b], hd, [&](std::int64_t t) { return &kc[slot(t)]; },
          [&](std::int64_t t) { return &vc[slot(t)]; }, &out[(b * heads + h) * hd]);
    }
  return out;
}

void kv_append(const std::vector<float>& k, const std::vector<float>& v, const std::vector<std::int32_t>& slots,
               int kv_heads, int hd, std::vector<double>& kc, std::vector<double>& vc) {
  const std::int64_t row = static_cast<std::int64_t>(kv_heads) * hd;
  for (std::size_t t = 0; t < slots.size(); ++t)
    for (std::int64_t e = 0; e < row; ++e) {
      kc[slots[t] * row + e] = k[t * row + e];
      vc[slots[t] * row + e] = v[t * row + e];
    }
}

namespace {
// y[r, :] = x[r, :] / rms(x[r, :]) * w, in float64.
template <class X>
std::vector<double> rmsnorm_rows(const std::vector<X>& x, const std::vector<float>& w, std::int64_t rows, int hidden,
                                 double eps) {
  std::vector<double> y(static_cast<std::size_t>(rows * hidden));
  for (std::int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int i = 0; i < hidden; ++i) ss += static_cast<double>(x[r * hidden + i]) * x[r * hidden + i];
    const double inv = 1.0 / std::sqrt(ss / hidden + eps);
    for (int i = 0; i < hidden; ++i) y[r * hidden + i] = x[r * hidden + i] * inv * w[i];
  }
  return y;
}
}  // namespace

std::vector<double> rmsnorm(const std::vector<float>& x, const std::vector<float>& w, std::int64_t rows, int hidden,
                            double eps) {
  return rmsnorm_rows(x, w, rows, hidden, eps);
}

AddRmsNorm add_rmsnorm(const std::vector<float>& x, const std::vector<float>& residual, const std::vector<float>& w,
                       std::int64_t rows, int hidden, double eps) {
  AddRmsNorm r;
  r.residual.resize(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) r.residual[i] = static_cast<double>(x[i]) + residual[i];
  r.out = rmsnorm_rows(r.residual, w, rows, hidden, eps);
  return r;
}

std::vector<double> rope(const std::vector<float>& x, const std::vector<std::int32_t>& pos, int nheads, int hd,
                         double theta) {
  std::vector<double> y(x.begin(), x.end());
  const int half = hd / 2;
  for (std::size_t t = 0; t < pos.size(); ++t)
    for (int h = 0; h < nheads; ++h) {
      double* r = &y[(t * nheads + h) * hd];
      for (int i = 0; i < half; ++i) {
        const double ang = pos[t] * std::pow(theta, -2.0 * i / hd);
        const double x0 = r[i], x1 = r[i + half];
        r[i] = x0 * std::cos(ang) - x1 * std::sin(ang);
        r[i + half] = x1 * std::cos(ang) + x0 * std::sin(ang);
      }
    }
  return y;
}

std::vector<double> silu_gate(const std::vector<float>& gu, std::int64_t rows, int ffn) {
  std::vector<double> y(static_cast<std::size_t>(rows * ffn));
  for (std::int64_t r = 0; r < rows; ++r)
    for (int f = 0; f < ffn; ++f) {
      const double g = gu[r * 2 * ffn + f], u = gu[r * 2 * ffn + ffn + f];
      y[r * ffn + f] = g / (1 + std::exp(-g)) * u;
    }
  return y;
}

}  // namespace pdsim::kernels::ref
