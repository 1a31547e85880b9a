// Options of the real-kernel cost model (scenario key "real_kernel"; see sim/cost/real_kernel.h).
#pragma once
#include <string>

namespace pdsim {

struct RealKernelOptions {
  std::string backend = "auto";  // "auto" (CUDA when available, else CPU) | "cpu" | "cuda"
  bool memo = false;             // reuse the time of an identical mapped batch shape
  int warmup_iters = 1;          // untimed runs on the first batch and after buffers grow
  int iters = 1;                 // timed runs per batch (minimum per op)
  int threads = 0;               // CPU backend threads; 0 = all cores (OpenMP default)
};

}  // namespace pdsim
