// Compute backend interface for the real-kernel mode: the ops one decoder
// layer needs, on real buffers. Implementations: CPU (Eigen, float32, always
// built) and CUDA (cuBLAS/cuBLASLt bf16 GEMMs with fp32 accumulation and
// kernels written here; built when nvcc is found).
//
// Conventions (all tensors dense, row-major, on the backend's device):
//   GEMM:       y[m, n] = x[m, k] . w[n, k]^T          (w stored like torch.nn.Linear)
//   Prefill attention (causal, GQA, ragged batch):
//               q[T, heads, hd], k/v[T, kv_heads, hd], out[T, heads, hd];
//               sequence i owns rows [cu_seqlens[i], cu_seqlens[i+1]);
//               query j of a sequence attends to keys 0..j; scale 1/sqrt(hd).
//   Paged KV cache: k_cache/v_cache[num_blocks, block_tokens, kv_heads, hd];
//               token t of a sequence lives in block block_table[t / block_tokens]
//               at offset t % block_tokens.
//   Decode attention: q[B, heads, hd] attends to context_lens[b] cached tokens of
//               sequence b through block_table[b, :]; out[B, heads, hd].
//   KV append:  k/v[T, kv_heads, hd] written to cache slots slot_mapping[T]
//               (slot = block * block_tokens + offset).
//   RMSNorm:    out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight
//   RoPE:       in place on q[T, heads, hd] and k[T, kv_heads, hd] at positions[T],
//               rotate-half (GPT-NeoX / Llama) pairing (i, i + hd/2), base theta.
//   SiLU-gate:  out[r, f] = silu(gate_up[r, f]) * gate_up[r, ffn + f], gate_up[r, 2*ffn].
//   Copy columns: dst[r, c] = src[r, col0 + c] for c < cols (src rows src_cols
//               long, dst rows cols long): q, k and v out of the fused projection.
// Integer index arrays (cu_seqlens, block_table, context_lens, slot_mapping,
// positions) are int32 device tensors.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pdsim::kernels {

enum class DType { kF32, kBF16, kI32 };
std::size_t dtype_bytes(DType t);

// A device buffer owned by the backend that made it (freed on destruction).
class Tensor {
 public:
  Tensor() = default;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;
  Tensor(Tensor&& o) noexcept { *this = std::move(o); }
  Tensor& operator=(Tensor&& o) noexcept;
  ~Tensor() { reset(); }

  void* data() const { return data_; }
  DType dtype() const { return dtype_; }
  const std::vector<std::int64_t>& shape() const { return shape_; }
  std::int64_t numel() const;
  std::size_t bytes() const { return static_cast<std::size_t>(numel()) * dtype_bytes(dtype_); }
  template <class T>
  T* as() const { return static_cast<T*>(data_); }

 private:
  friend class Backend;
  void reset();
  void* data_ = nullptr;
  DType dtype_ = DType::kF32;
  std::vector<std::int64_t> shape_;
  class Backend* owner_ = nullptr;
};

struct GemmArgs {
  const Tensor* x;  // [m, k]
  const Tensor* w;  // [n, k]
  Tensor* y;        // [m, n]
  std::int64_t m, n, k;
};

// Causal attention of each sequence's new tokens (queries) over its keys.
// Without cu_seqlens_k the keys are the new tokens themselves. With it
// (chunked prefill, prefix caching: FlashAttention's varlen call with
// cu_seqlens_k), sequence s has cu_seqlens_k[s+1] - cu_seqlens_k[s] keys,
// at least its queries: a cached prefix followed by the new tokens' own K/V,
// and query i (of n) sits at position prefix + i, seeing keys 0..prefix + i.
struct PrefillAttentionArgs {
  const Tensor *q, *k, *v;   // [T, heads, hd], [Tk, kv_heads, hd] x2
  const Tensor* cu_seqlens;  // [num_seqs + 1], int32: query rows
  Tensor* out;               // [T, heads, hd]
  int num_seqs, heads, kv_heads, head_dim;
  std::int64_t total_tokens;
  int max_seqlen;                        // >= every sequence's queries
  const Tensor* cu_seqlens_k = nullptr;  // [num_seqs + 1], int32: key rows (nullptr: = cu_seqlens)
  std::int64_t total_k_tokens = 0;       // Tk (with cu_seqlens_k)
};

struct DecodeAttentionArgs {
  const Tensor* q;                  // [B, heads, hd]
  const Tensor *k_cache, *v_cache;  // [num_blocks, block_tokens, kv_heads, hd]
  const Tensor* block_table;        // [B, max_blocks_per_seq], int32
  const Tensor* context_lens;       // [B], int32
  Tensor* out;                      // [B, heads, hd]
  int batch, heads, kv_heads, head_dim, block_tokens, max_blocks_per_seq;
  int max_context_len;
};

struct KvAppendArgs {
  const Tensor *k, *v;             // [T, kv_heads, hd]
  const Tensor* slot_mapping;      // [T], int32
  Tensor *k_cache, *v_cache;       // [num_blocks, block_tokens, kv_heads, hd]
  std::int64_t tokens;
  int kv_heads, head_dim, block_tokens;
};

// out = x * rsqrt(mean(x^2) + eps) * weight, row by row. With `residual` set,
// the residual connection before the norm runs in the same kernel, as vLLM's
// fused_add_rms_norm does: residual += x, then out = the norm of the sum as
// residual stores it (x is then a sublayer's output; one pass over the rows
// instead of an add and a norm).
struct RmsNormArgs {
  const Tensor *x, *weight;  // [rows, hidden], [hidden]
  Tensor* out;               // [rows, hidden]
  std::int64_t rows;
  int hidden;
  float eps;
  Tensor* residual = nullptr;  // [rows, hidden], updated in place; null: a plain norm
};

struct RopeArgs {
  Tensor *q, *k;            // [T, heads, hd], [T, kv_heads, hd], in place
  const Tensor* positions;  // [T], int32
  std::int64_t tokens;
  int heads, kv_heads, head_dim;
  float theta;
};

struct SiluGateArgs {
  const Tensor* gate_up;  // [rows, 2 * ffn]
  Tensor* out;            // [rows, ffn]
  std::int64_t rows;
  int ffn;
};

struct CopyColumnsArgs {
  const Tensor* src;  // [rows, src_cols]
  Tensor* dst;        // [rows, cols], same dtype
  std::int64_t rows, src_cols, col0, cols;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;    // "cpu" | "cuda"
  virtual std::string device() const = 0;  // human-readable device string
  // Element type of activations and weights on this backend (CPU: f32, CUDA: bf16).
  virtual DType compute_dtype() const = 0;
  // Memory free for new buffers now, in bytes (CPU: MemAvailable; CUDA: the
  // device's free memory), for callers that choose how much to allocate.
  virtual double free_memory_bytes() const = 0;

  Tensor allocate(std::vector<std::int64_t> shape, DType dtype);
  // Host float32 <-> device (converted to/from the tensor's dtype); int32 tensors use the int variants.
  virtual void upload(Tensor& dst, const float* src) = 0;
  virtual void upload_i32(Tensor& dst, const std::int32_t* src) = 0;
  virtual void download(const Tensor& src, float* dst) = 0;
  // Fills a float tensor with random_fill_value(seed, i, scale) for each
  // element i (kernels/random_fill.h). The default generates on the host
  // and uploads; the CUDA backend generates on the device.
  virtual void fill_random(Tensor& t, float scale, std::uint32_t seed);

  virtual void gemm(const GemmArgs& a) = 0;
  virtual void prefill_attention(const PrefillAttentionArgs& a) = 0;
  virtual void decode_attention(const DecodeAttentionArgs& a) = 0;
  virtual void kv_append(const KvAppendArgs& a) = 0;
  virtual void rmsnorm(const RmsNormArgs& a) = 0;
  virtual void rope(const RopeArgs& a) = 0;
  virtual void silu_gate(const SiluGateArgs& a) = 0;
  // dst = src, byte for byte (same dtype and element count): the device's own
  // copy (CUDA: cudaMemcpyAsync device to device; CPU: memcpy in chunks over
  // the backend's threads), which `pdsim profile` times as the copy bandwidth.
  virtual void copy(Tensor& dst, const Tensor& src) = 0;
  // A column range of a row-major matrix (see the conventions above).
  virtual void copy_columns(const CopyColumnsArgs& a) = 0;

  // Timing: start/stop bracket enqueued work (CUDA events; steady clock on CPU).
  virtual void synchronize() = 0;
  virtual void timer_start() = 0;
  virtual double timer_stop_s() = 0;  // synchronizes

 protected:
  virtual void* raw_allocate(std::size_t bytes) = 0;
  virtual void raw_free(void* p) = 0;
  friend class Tensor;
};

// Copy bandwidth of `b` in bytes/s: Backend::copy of `src_bytes`, bytes read
// + written over the best of `iters` timed copies after one untimed one. The
// ceiling `pdsim profile` records and the kernel benchmarks' bw_frac divides by.
double measure_copy_bytes_per_s(Backend& b, double src_bytes, int iters);

// threads: OpenMP/Eigen threads of its kernels; 0 = OpenMP's default (all cores or OMP_NUM_THREADS).
std::unique_ptr<Backend> make_cpu_backend(int threads = 0);
// nullptr (and *why set) when built without CUDA or no device is visible.
std::unique_ptr<Backend> make_cuda_backend(std::string* why);

}  // namespace pdsim::kernels
