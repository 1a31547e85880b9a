// Options of the real-kernel cost model (scenario key "real_kernel"; see sim/cost/real_kernel.h).
#pragma once
#include <memory>
#include <string>

namespace pdsim {

class RealTimings;

struct RealKernelOptions {
  std::string backend = "auto";  // "auto" (CUDA when available, else CPU) | "cpu" | "cuda"
  bool memo = false;             // reuse the time of an identical mapped batch shape
  int warmup_iters = 1;          // untimed runs on the first batch and after buffers grow
  int iters = 1;                 // timed runs per batch (minimum per op)
  int threads = 0;               // CPU backend threads; 0 = all cores (OpenMP default)
  // Layers executed per batch (kernels/layer_executor.h): "one" (one layer,
  // time x L), "all" (every layer with its own weights and KV cache), "auto"
  // (all when the model's per-GPU weights take at most half the backend's
  // free memory, else one).
  std::string layers = "one";
  std::string timings_file;      // replay/record file (sim/cost/real_timings.h); "" = none
  // The opened timings file, shared by a run's cost models (set by the
  // simulator when timings_file is set; not a scenario key).
  std::shared_ptr<RealTimings> timings;
};

}  // namespace pdsim
