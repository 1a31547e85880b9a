// Plain-loop float64 references for every op of kernels/backend.h, in one
// place (flashinfer's src/cpu_reference.h style). Host vectors, same layouts
// and semantics as the backend ops; inputs are float (what a test uploads),
// outputs double. Used by tests/test_kernels_cpu.cc over every backend.
#pragma once
#include <cstdint>
#include <vector>

namespace pdsim::kernels::ref {

// y[m, n] = x[m, k] . w[n, k]^T
std::vector<double> gemm(const std::vector<float>& x, const std::vector<float>& w, std::int64_t m, std::int64_t n,
                         std::int64_t k);

// Causal GQA attention over a ragged batch; q[T, heads, hd], k/v[Tk, kv_heads, hd] -> out[T, heads, hd].
// cu_seqlens_k empty: keys = queries; else a cached prefix before each
// sequence's new tokens, as PrefillAttentionArgs::cu_seqlens_k.
std::vector<double> prefill_attention(const std::vector<float>& q, const std::vector<float>& k,
                                      const std::vector<float>& v, const std::vector<std::int32_t>& cu_seqlens,
                                      int heads, int kv_heads, int head_dim,
                                      const std::vector<std::int32_t>& cu_seqlens_k = {});

// q[B, heads, hd] over context_lens[b] tokens of a paged cache
// [num_blocks, block_tokens, kv_heads, hd] through block_table[B, max_blocks_per_seq].
std::vector<double> decode_attention(const std::vector<float>& q, const std::vector<float>& k_cache,
                                     const std::vector<float>& v_cache, const std::vector<std::int32_t>& block_table,
                                     const std::vector<std::int32_t>& context_lens, int heads, int kv_heads,
                                     int head_dim, int block_tokens, int max_blocks_per_seq);

// Writes k/v[T, kv_heads, hd] into copies of the caches at slot_mapping[T]; returns the new caches.
void kv_append(const std::vector<float>& k, const std::vector<float>& v, const std::vector<std::int32_t>& slot_mapping,
               int kv_heads, int head_dim, std::vector<double>& k_cache, std::vector<double>& v_cache);

std::vector<double> rmsnorm(const std::vector<float>& x, const std::vector<float>& weight, std::int64_t rows,
                            int hidden, double eps);

// The residual add fused into RMSNorm: residual + x, and the norm of that sum.
struct AddRmsNorm {
  std::vector<double> residual, out;
};
AddRmsNorm add_rmsnorm(const std::vector<float>& x, const std::vector<float>& residual,
                       const std::vector<float>& weight, std::int64_t rows, int hidden, double eps);

// Rotate-half RoPE of x[T, nheads, hd] at positions[T], base theta (returns the rotated copy).
std::vector<double> rope(const std::vector<float>& x, const std::vector<std::int32_t>& positions, int nheads,
                         int head_dim, double theta);

// out[r, f] = silu(gate_up[r, f]) * gate_up[r, ffn + f]
std::vector<double> silu_gate(const std::vector<float>& gate_up, std::int64_t rows, int ffn);

}  // namespace pdsim::kernels::ref
