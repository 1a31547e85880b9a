// cuBLAS, loaded on first use (dlopen) rather than linked. Linking it made
// every pdsim process, CPU-only runs and `--help` included, load
// libcublasLt (540 MB) and run its static initialisers: ~0.35 s and ~200 MB
// of resident memory at start-up on this project's VM, paid by each of the
// hundreds of CLI runs in a test suite or a CI job. Host-only; include
// from .cu files.
#pragma once
#include <cublas_v2.h>

#include <string>

namespace pdsim::kernels::cuda {

// The cuBLAS entry points the CUDA backend calls.
struct CublasApi {
  decltype(&cublasCreate_v2) create;
  decltype(&cublasDestroy_v2) destroy;
  decltype(&cublasSetStream_v2) set_stream;
  decltype(&cublasSetWorkspace_v2) set_workspace;
  // The 32-bit-index cublasGemmEx (C++ also sees an int64_t overload).
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                            const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                            cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
  decltype(&cublasGetStatusString) status_string;
};

// The API, loaded once (thread-safe): the cuBLAS this build was configured
// with, else libcublas.so.<major> from the library search path. nullptr when
// neither loads or a symbol is missing, with the reason in *why.
const CublasApi* cublas_api(std::string* why = nullptr);
// The file name that loaded ("" before a load or when none did).
std::string cublas_loaded_path();

}  // namespace pdsim::kernels::cuda
