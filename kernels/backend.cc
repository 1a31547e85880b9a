// Backend-independent parts of kernels/backend.h: Tensor ownership and
// Backend::allocate. make_cuda_backend is defined here only in builds without
// CUDA (the CUDA build defines it in kernels/cuda/).
#include "kernels/backend.h"

#include <algorithm>
#include <vector>

#include "kernels/check.h"
#include "kernels/random_fill.h"

namespace pdsim::kernels {

double measure_copy_bytes_per_s(Backend& b, double src_bytes, int iters) {
  const double elem_bytes = static_cast<double>(dtype_bytes(b.compute_dtype()));
  const auto elems = static_cast<std::int64_t>(src_bytes / elem_bytes);
  PDSIM_KCHECK(elems > 0 && iters >= 1, "measure_copy_bytes_per_s needs a positive size and iteration count");
  Tensor src = b.allocate({elems}, b.compute_dtype()), dst = b.allocate({elems}, b.compute_dtype());
  b.fill_random(src, 1.0f, 21);
  b.copy(dst, src);
  b.synchronize();
  double best_s = 1e300;
  for (int i = 0; i < iters; ++i) {
    b.timer_start();
    b.copy(dst, src);
    best_s = std::min(best_s, b.timer_stop_s());
  }
  return 2.0 * static_cast<double>(elems) * elem_bytes / best_s;
}

std::size_t dtype_bytes(DType t) {
  switch (t) {
    case DType::kF32: return 4;
    case DType::kBF16: return 2;
    case DType::kI32: return 4;
  }
  return 0;
}

Tensor& Tensor::operator=(Tensor&& o) noexcept {
  if (this != &o) {
    reset();
    data_ = o.data_;
    dtype_ = o.dtype_;
    shape_ = std::move(o.shape_);
    owner_ = o.owner_;
    o.data_ = nullptr;
    o.owner_ = nullptr;
    o.shape_.clear();
  }
  return *this;
}

std::int64_t Tensor::numel() const {
  if (shape_.empty()) return data_ ? 1 : 0;
  std::int64_t n = 1;
  for (auto d : shape_) n *= d;
  return n;
}

void Tensor::reset() {
  if (data_ && owner_) owner_->raw_free(data_);
  data_ = nullptr;
  owner_ = nullptr;
  shape_.clear();
}

void Backend::fill_random(Tensor& t, float scale, std::uint32_t seed) {
  std::vector<float> h(static_cast<std::size_t>(t.numel()));
  for (std::size_t i = 0; i < h.size(); ++i) h[i] = random_fill_value(seed, i, scale);
  upload(t, h.data());
}

Tensor Backend::allocate(std::vector<std::int64_t> shape, DType dtype) {
  std::int64_t n = 1;
  for (auto d : shape) {
    PDSIM_KCHECK(d >= 0, "negative tensor dimension");
    n *= d;
  }
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.owner_ = this;
  // Zero-sized tensors still get a distinct (1-element) allocation so data() is never null.
  t.data_ = raw_allocate(static_cast<std::size_t>(std::max<std::int64_t>(n, 1)) * dtype_bytes(dtype));
  PDSIM_KCHECK(t.data_ != nullptr, "backend allocation failed");
  return t;
}

#ifndef PDSIM_HAVE_CUDA
std::unique_ptr<Backend> make_cuda_backend(std::string* why) {
  if (why) *why = "this build has no CUDA support (nvcc was not found at configure time)";
  return nullptr;
}
#endif

}  // namespace pdsim::kernels
