// Kernel parameter structs and launchers of the CUDA backend. Each launcher is
// a template over the storage type T (__nv_bfloat16 in production, float for
// f32 tensors); all math is fp32. Pointers are device pointers; shapes are
// written next to each field. Launchers enqueue on `stream` and check the
// launch; they do not synchronize.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/decode_split.h"  // DecodeSplit, plan_decode_split

// Marks a plain vector access the kernel believes aligned: nothing on a GPU
// (where a misaligned one faults); the emulator (tests/emu) defines it to check.
#ifndef PDSIM_CHECK_ALIGNED
#define PDSIM_CHECK_ALIGNED(p, align) ((void)0)
#endif

namespace pdsim::kernels::cuda {

using bf16 = __nv_bfloat16;

// Causal prefill attention over a ragged batch (FlashAttention-2 style:
// K/V tiles in shared memory, online softmax, never materializes T x T).
// With cu_seqlens_k, a sequence's keys are a cached prefix and then its new
// tokens (backend.h, PrefillAttentionArgs): query row r sits at key position
// prefix + r and sees keys [0, prefix + r] (FlashAttention's causal mask
// aligned to the bottom right).
template <class T>
struct PrefillAttentionParams {
  const T* q;                // (total_tokens, heads, head_dim)
  const T* k;                // (total_k_tokens, kv_heads, head_dim)
  const T* v;                // (total_k_tokens, kv_heads, head_dim)
  const std::int32_t* cu_seqlens;  // (num_seqs + 1), cu_seqlens[0] == 0
  T* out;                    // (total_tokens, heads, head_dim)
  int num_seqs = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int max_seqlen = 0;        // >= every cu_seqlens[i+1] - cu_seqlens[i]
  float scale = 0;           // softmax scale, 1/sqrt(head_dim)
  // (num_seqs + 1) key row offsets, each sequence's count >= its queries';
  // nullptr: the keys are the queries' own rows (no prefix).
  const std::int32_t* cu_seqlens_k = nullptr;
};

// Key rows of sequence `seq` whose queries are rows [q_start, q_start + q_len).
struct PrefillKeys {
  int start, len, prefix;  // prefix = len - q_len: query r's position is prefix + r
};
template <class P>
__host__ __device__ inline PrefillKeys prefill_keys(const P& p, int seq, int q_start, int q_len) {
  if (p.cu_seqlens_k == nullptr) return {q_start, q_len, 0};
  const int start = p.cu_seqlens_k[seq], len = p.cu_seqlens_k[seq + 1] - start;
  return {start, len, len - q_len};
}

// Decode attention over a paged KV cache, split along the context
// (flash-decoding): pass 1 writes per-split partial (acc, max, sum), pass 2
// merges them. With one split, pass 1 writes `out` directly.
template <class T>
struct DecodeAttentionParams {
  const T* q;                // (batch, heads, head_dim)
  const T* k_cache;          // (num_blocks, block_tokens, kv_heads, head_dim)
  const T* v_cache;          // (num_blocks, block_tokens, kv_heads, head_dim)
  const std::int32_t* block_table;   // (batch, max_blocks_per_seq)
  const std::int32_t* context_lens;  // (batch)
  T* out;                    // (batch, heads, head_dim)
  int batch = 0, heads = 0, kv_heads = 0, head_dim = 0, block_tokens = 0, max_blocks_per_seq = 0;
  int max_context_len = 0;   // >= every context_lens[b]
  float scale = 0;
  // Split-K workspace (ignored when num_splits == 1):
  int num_splits = 1;        // splits per sequence
  int split_tokens = 0;      // context tokens per split (multiple of the 32-token tile)
  float* partial_acc = nullptr;  // (batch, heads, num_splits, head_dim), unnormalized
  float* partial_max = nullptr;  // (batch, heads, num_splits), log2 domain
  float* partial_sum = nullptr;  // (batch, heads, num_splits)
};

template <class T>
struct KvAppendParams {
  const T* k;                // (tokens, kv_heads, head_dim)
  const T* v;                // (tokens, kv_heads, head_dim)
  const std::int32_t* slot_mapping;  // (tokens); slot = block * block_tokens + offset; < 0 skips the token
  T* k_cache;                // (num_blocks, block_tokens, kv_heads, head_dim) == (slots, kv_heads, head_dim)
  T* v_cache;
  std::int64_t tokens = 0;
  int kv_heads = 0, head_dim = 0;
};

// out = norm(x) * weight; with residual set, residual += x first (rounded to
// T as stored) and out = norm(residual) * weight: vLLM's fused_add_rms_norm.
template <class T>
struct RmsNormParams {
  const T* x;       // (rows, hidden)
  const T* weight;  // (hidden)
  T* out;           // (rows, hidden)
  std::int64_t rows = 0;
  int hidden = 0;
  float eps = 0;
  T* residual = nullptr;  // (rows, hidden), updated in place; null: a plain norm
};

template <class T>
struct RopeParams {
  T* q;                            // (tokens, heads, head_dim), in place
  T* k;                            // (tokens, kv_heads, head_dim), in place
  const std::int32_t* positions;   // (tokens)
  std::int64_t tokens = 0;
  int heads = 0, kv_heads = 0, head_dim = 0;  // head_dim even
  float theta = 0;
};

template <class T>
struct SiluGateParams {
  const T* gate_up;  // (rows, 2 * ffn): gate in [:, :ffn], up in [:, ffn:]
  T* out;            // (rows, ffn)
  std::int64_t rows = 0;
  int ffn = 0;
};

// Prefill runs the tensor-core kernel (bf16 mma.sync, FlashAttention-2 style)
// for bf16 with head_dim 64 or 128 on sm_80+ (on compute capability 9.0, in
// builds with sm_90a code, the wgmma kernel first), else the CUDA-core kernel.
// The environment variable PDSIM_ATTENTION_KERNEL, read at each launch,
// overrides: "simt" forces the CUDA-core kernel, "mma" / "wgmma" demand that
// tensor-core kernel (throw where it does not apply), unset or "auto" picks;
// any other value throws.
template <class T> void launch_prefill_attention(const PrefillAttentionParams<T>& p, cudaStream_t stream);
// Decode runs, on compute capability 9.x, the tensor-core kernel where it
// applies (bf16, head_dim 64 or 128, heads/kv_heads <= 16); else the register
// kernel (K/V straight into registers, built for HBM bandwidth) where
// head_dim * sizeof(T) % 16 == 0, head_dim <= 256 and heads/kv_heads <= 8;
// else the shared-memory kernel. PDSIM_DECODE_KERNEL, read at each launch,
// overrides: "smem" forces the shared-memory kernel, "regs", "regs-scatter"
// and "mma" demand that kernel (throw where it does not apply), unset or
// "auto" picks; any other value throws.
template <class T> void launch_decode_attention(const DecodeAttentionParams<T>& p, cudaStream_t stream);
template <class T> void launch_kv_append(const KvAppendParams<T>& p, cudaStream_t stream);
template <class T> void launch_rmsnorm(const RmsNormParams<T>& p, cudaStream_t stream);
// out[i] = random_fill_value(seed, i, scale) (kernels/random_fill.h), i < n.
template <class T> void launch_fill_random(T* out, std::int64_t n, float scale, std::uint32_t seed, cudaStream_t stream);
template <class T> void launch_rope(const RopeParams<T>& p, cudaStream_t stream);
template <class T> void launch_silu_gate(const SiluGateParams<T>& p, cudaStream_t stream);

// Declares the kernel's dynamic shared memory as `type name[]` (the launch's
// third <<< >>> argument sizes it). A macro so that the host emulator of
// tests/emu (whose fake cuda_runtime.h defines it first) can point `name` at
// its per-block buffer instead.
#ifndef PDSIM_DYNAMIC_SHARED
#define PDSIM_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

// Storage <-> fp32 on the device.
__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(bf16 x) { return __bfloat162float(x); }
template <class T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_f32<bf16>(float x) { return __float2bfloat16_rn(x); }

}  // namespace pdsim::kernels::cuda
