// Launchers of the row-wise and elementwise kernels of the CUDA backend
// (RMSNorm with or without the fused residual add, RoPE, SiLU-gate, KV append,
// random fill); the device code is in elementwise_kernels.cuh.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/elementwise_kernels.cuh"
#include "kernels/cuda/ops.cuh"

namespace pdsim::kernels::cuda {
namespace {

using elementwise::fill_random_kernel;
using elementwise::grid_for;
using elementwise::kThreads;
using elementwise::kv_append_kernel;
using elementwise::rmsnorm_kernel;
using elementwise::rmsnorm_vec_kernel;
using elementwise::rope_kernel;
using elementwise::silu_gate_kernel;
using elementwise::silu_gate_vec_kernel;

// PDSIM_ELEMENTWISE_KERNEL (read at every launch, like the attention
// variables): unset or "auto" -> the 16-byte kernels where the shape and
// alignment allow; "scalar" -> always the scalar kernels (the fallback
// tools/gpu_session.sh picks if the vectorized ones fail their tests on a GPU).
bool vectorized_allowed() {
  const char* e = std::getenv("PDSIM_ELEMENTWISE_KERNEL");
  if (e == nullptr || *e == '\0' || std::strcmp(e, "auto") == 0) return true;
  if (std::strcmp(e, "scalar") == 0) return false;
  PDSIM_CUDA_REQUIRE(false, std::string("PDSIM_ELEMENTWISE_KERNEL must be auto or scalar, got '") + e + "'");
  return true;
}

}  // namespace

template <class T>
void launch_fill_random(T* out, std::int64_t n, float scale, std::uint32_t seed, cudaStream_t stream) {
  PDSIM_CUDA_REQUIRE(n >= 0, "fill_random: negative size");
  if (n == 0) return;
  fill_random_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(out, n, scale, seed);
  cudaCheckLaunch();
}

template <class T>
void launch_rmsnorm(const RmsNormParams<T>& p, cudaStream_t stream) {
  PDSIM_CUDA_REQUIRE(p.hidden > 0, "rmsnorm: hidden must be > 0");
  PDSIM_CUDA_REQUIRE(p.rows >= 0 && p.rows <= 0x7fffffffLL, "rmsnorm: rows out of range");
  if (p.rows == 0) return;
  const unsigned grid = static_cast<unsigned>(p.rows);
  switch (vectorized_allowed() ? elementwise::rmsnorm_vecs_per_thread(p) : 0) {
    case 1: rmsnorm_vec_kernel<T, 1><<<grid, kThreads, 0, stream>>>(p); break;
    case 2: rmsnorm_vec_kernel<T, 2><<<grid, kThreads, 0, stream>>>(p); break;
    case 4: rmsnorm_vec_kernel<T, 4><<<grid, kThreads, 0, stream>>>(p); break;
    case 8: rmsnorm_vec_kernel<T, 8><<<grid, kThreads, 0, stream>>>(p); break;
    default: rmsnorm_kernel<T><<<grid, kThreads, 0, stream>>>(p); break;
  }
  cudaCheckLaunch();
}

template <class T>
void launch_rope(const RopeParams<T>& p, cudaStream_t stream) {
  PDSIM_CUDA_REQUIRE(p.head_dim > 0 && p.head_dim % 2 == 0,
                     "rope: head_dim must be even, got " + std::to_string(p.head_dim));
  if (p.tokens == 0) return;
  rope_kernel<T><<<grid_for(elementwise::rope_items(p.tokens, p.heads, p.kv_heads, p.head_dim)), kThreads, 0, stream>>>(p);
  cudaCheckLaunch();
}

template <class T>
void launch_silu_gate(const SiluGateParams<T>& p, cudaStream_t stream) {
  if (p.rows == 0 || p.ffn == 0) return;
  if (vectorized_allowed() && elementwise::silu_gate_vectorizable(p))
    silu_gate_vec_kernel<T><<<grid_for(p.rows * (p.ffn / elementwise::kVec<T>)), kThreads, 0, stream>>>(p);
  else
    silu_gate_kernel<T><<<grid_for(p.rows * p.ffn), kThreads, 0, stream>>>(p);
  cudaCheckLaunch();
}

template <class T>
void launch_kv_append(const KvAppendParams<T>& p, cudaStream_t stream) {
  if (p.tokens == 0) return;
  if (vectorized_allowed() && elementwise::kv_append_vectorizable(p))
    kv_append_kernel<T, true><<<grid_for(elementwise::kv_append_items(p, true)), kThreads, 0, stream>>>(p);
  else
    kv_append_kernel<T><<<grid_for(elementwise::kv_append_items(p, false)), kThreads, 0, stream>>>(p);
  cudaCheckLaunch();
}

template void launch_fill_random<float>(float*, std::int64_t, float, std::uint32_t, cudaStream_t);
template void launch_fill_random<bf16>(bf16*, std::int64_t, float, std::uint32_t, cudaStream_t);
template void launch_rmsnorm<float>(const RmsNormParams<float>&, cudaStream_t);
template void launch_rmsnorm<bf16>(const RmsNormParams<bf16>&, cudaStream_t);
template void launch_rope<float>(const RopeParams<float>&, cudaStream_t);
template void launch_rope<bf16>(const RopeParams<bf16>&, cudaStream_t);
template void launch_silu_gate<float>(const SiluGateParams<float>&, cudaStream_t);
template void launch_silu_gate<bf16>(const SiluGateParams<bf16>&, cudaStream_t);
template void launch_kv_append<float>(const KvAppendParams<float>&, cudaStream_t);
template void launch_kv_append<bf16>(const KvAppendParams<bf16>&, cudaStream_t);

}  // namespace pdsim::kernels::cuda
