// Error checking for every CUDA runtime and cuBLAS call (llm.c's cudaCheck
// style): a failed call throws std::runtime_error naming the call, the error
// and file:line. Host-only; include from .cu files.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "kernels/cuda/cublas_api.h"

#include <stdexcept>
#include <string>

namespace pdsim::kernels::cuda {

[[noreturn]] inline void cuda_fail(const std::string& what, const char* expr, const char* file, int line) {
  throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + expr + " failed: " + what);
}

inline void cuda_check(cudaError_t err, const char* expr, const char* file, int line) {
  if (err != cudaSuccess)
    cuda_fail(std::string(cudaGetErrorString(err)) + " (" + cudaGetErrorName(err) + ")", expr, file, line);
}

inline void cublas_check(cublasStatus_t st, const char* expr, const char* file, int line) {
  if (st != CUBLAS_STATUS_SUCCESS) {
    const CublasApi* api = cublas_api();  // loaded: a status comes from a call through it
    cuda_fail(std::string(api ? api->status_string(st) : "cuBLAS error") + " (cublasStatus " +
                  std::to_string(static_cast<int>(st)) + ")",
              expr, file, line);
  }
}

// An argument/shape precondition of a backend op; always on.
inline void require(bool ok, const std::string& what, const char* file, int line) {
  if (!ok) throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": cuda backend: " + what);
}

}  // namespace pdsim::kernels::cuda

#define cudaCheck(call) ::pdsim::kernels::cuda::cuda_check((call), #call, __FILE__, __LINE__)
#define cublasCheck(call) ::pdsim::kernels::cuda::cublas_check((call), #call, __FILE__, __LINE__)
// After a <<<...>>> launch: catches bad launch configurations immediately.
#define cudaCheckLaunch() ::pdsim::kernels::cuda::cuda_check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
#define PDSIM_CUDA_REQUIRE(cond, what) ::pdsim::kernels::cuda::require((cond), (what), __FILE__, __LINE__)
