// LayerExecutor: runs one decoder layer of a model on real buffers of a
// Backend and measures each op, for the real-kernel cost model and
// `pdsim profile`.
//
// One layer, per GPU of a TP group (heads/tp, kv_heads/tp or 1, ffn/tp,
// vocab/tp; TP all-reduces are not executed), in this order:
//   residual add + input RMSNorm (one kernel) -> qkv_proj (one fused GEMM,
//   timed; the backend has no strided views, so three more, untimed, make
//   the contiguous q, k, v the next ops read) -> kv_append_rope (RoPE on q,
//   k; K/V written to a paged cache) -> attention_prefill (ragged causal,
//   prefill sequences, each after its cached prefix if it has one) and/or
//   attention_decode (paged, decode sequences) ->
//   o_proj -> residual add + post-attention RMSNorm (one kernel) ->
//   mlp_gate_up -> mlp_silu_mul -> mlp_down.
// The residual adds run inside the norms, as vLLM's fused_add_rms_norm does:
// the input norm adds the layer input (the previous layer's MLP output) to
// the residual stream and normalizes the sum.
// Op names match sim/model/ops.cc. norms_residual is the two fused add +
// RMSNorm kernels. LayerNorm models are run with RMSNorm and biases are
// ignored; only gated-SiLU MLPs are supported.
// A full model is L identical layers plus one lm_head GEMM over the rows that
// emit a token. Two ways to run it (ExecutorOptions::all_layers; LayerTiming::
// layers_run says which ran):
//  - one layer (default): one layer is run and its time multiplied by L.
//    Cheap (a step costs one layer's kernels) and memory-light (one layer's
//    weights and KV cache, plus rotating copies); what it cannot see is how
//    layers run back to back (caches and launch pipelining across layers).
//  - all layers: every layer runs with its own weights and its own KV cache,
//    each layer's input being the previous layer's output, as a serving
//    engine runs them; op times are summed over the layers (and reported per
//    layer as the mean). Needs the whole model's weights and KV in memory and
//    L times the time per step.
//
// Memory: the executor owns its buffers (weights, activations, a paged KV
// cache of the real size for the batch: every sequence's blocks, assigned in
// a shuffled order as a running engine's would be) and keeps them between
// runs, growing them when a batch needs more. Weights and layer inputs are
// held in `copies` sets (enough to exceed ExecutorOptions::rotate_bytes, at
// least 2, at most the layer count) used in turn, so one run does not find
// the previous run's weights in cache. Values are small pseudo-random
// numbers; the timing does not depend on them.
// Warm-up: warmup_iters untimed runs on the first batch and whenever buffers
// were (re)allocated; then iters timed runs, the minimum per op (other
// processes on a shared machine only ever add time).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.h"

namespace pdsim {
struct ModelSpec;
}

namespace pdsim::kernels {

// One layer's shapes on one GPU.
struct LayerDims {
  std::string model;
  int layers = 0;
  int hidden = 0;
  int heads = 0, kv_heads = 0, head_dim = 0;  // per GPU
  int ffn = 0;                                // per GPU
  int vocab = 0;                              // per GPU (lm_head columns)
  float rope_theta = 10000.0f;
  float norm_eps = 1e-5f;
};
// heads/tp, max(1, kv_heads/tp), ffn/tp, vocab/tp. Throws InputError (naming
// `where`) for shapes the executor cannot run (non-gated MLP, tp not dividing heads).
LayerDims layer_dims(const ModelSpec& model, int tp, const std::string& where);

// A batch: prefill sequences (new tokens each, after a cached prefix of
// prefill_prefix tokens: a chunk of a chunked prefill, or a prompt whose
// prefix was cached) and decode sequences (KV tokens each reads, including
// the one being decoded). GEMM rows = sum(prefill_lens) + decode_ctx.size().
// A prefix adds no GEMM rows; it is in the KV cache (its blocks allocated
// like the new tokens') and prefill attention reads it: the new tokens'
// queries see the prefix and, causally, each other (RoPE positions start
// after it). The attention kernel takes each sequence's keys contiguous,
// prefix then new tokens (cu_seqlens_k, as FlashAttention's varlen call):
// the executor keeps them in their own buffers (per layer when all layers
// run) and copies the new tokens' K/V there untimed after kv_append, where
// a serving engine's kernel would read them through the block table.
struct LayerBatch {
  std::vector<int> prefill_lens;
  std::vector<int> decode_ctx;
  std::int64_t logit_rows = 0;  // lm_head rows (<= GEMM rows)
  std::vector<int> prefill_prefix;  // empty (no prefixes) or one per prefill sequence, >= 0
  std::int64_t tokens() const;
};

struct OpTiming {
  std::string name;  // as in sim/model/ops.cc
  double time_s = 0; // one layer (lm_head: once)
};

struct LayerTiming {
  std::vector<OpTiming> ops;  // per layer, in execution order (norms_residual last)
  double lm_head_s = 0;       // 0 when logit_rows == 0
  int layers = 0;
  int layers_run = 1;         // layers executed per timed run: 1 or `layers` (ExecutorOptions::all_layers)
  double layer_s() const;     // sum of ops
  double model_s() const { return layers * layer_s() + lm_head_s; }
  double op_s(const std::string& name) const;  // 0 when absent
};

struct ExecutorOptions {
  int warmup_iters = 1;
  int iters = 3;
  int block_tokens = 16;
  double rotate_bytes = 64.0 * 1024 * 1024;
  bool all_layers = false;  // run every layer (own weights and KV cache) instead of one layer x L
};

// Bytes of one layer's weights on one GPU (the executor's fused QKV, O,
// gate_up, down and norm weights: what it allocates per layer) in `dtype`,
// and of the lm_head shard.
double layer_weight_bytes(const LayerDims& dims, DType dtype);
double lm_head_bytes(const LayerDims& dims, DType dtype);

class LayerExecutor {
 public:
  // Borrows `backend` (must outlive the executor).
  LayerExecutor(Backend& backend, LayerDims dims, ExecutorOptions opt = {});
  ~LayerExecutor();
  LayerTiming run(const LayerBatch& batch);
  const LayerDims& dims() const { return dims_; }
  const ExecutorOptions& options() const { return opt_; }
  Backend& backend() { return backend_; }
  int copies() const;

 private:
  struct Buffers;
  Backend& backend_;
  LayerDims dims_;
  ExecutorOptions opt_;
  std::unique_ptr<Buffers> buf_;
};

}  // namespace pdsim::kernels
