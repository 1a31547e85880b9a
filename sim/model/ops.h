// Model -> ops for one batch: the single place where a transformer's work is
// counted. Cost models (roofline, profiled, real) price these ops.
//
// Counting conventions (per GPU of a TP group; a multiply-add is 2 FLOPs):
//   GEMM (m x k) @ (k x n): flops = 2mnk; bytes = weights n*k + activations m*k + m*n.
//   Attention for a sequence with `n` new tokens and `c` cached tokens (causal):
//     query-key pairs p = n*c + n(n+1)/2; flops = 4 * heads_per_gpu * head_dim * p
//     (QK^T and PV); bytes = K and V of all c+n tokens read once + Q, O + new K,V written.
//   Norms, residual adds, RoPE and the MLP activation are elementwise ops.
//   TP all-reduce: 2 per layer (after attention and after MLP) of tokens*hidden.
//   PP: layers split over stages; a batch's latency is the sum over stages
//   (one batch in flight per instance), plus pp-1 activation hand-offs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "sim/model/model_spec.h"

namespace pdsim {

// One sequence's part in a batch: tokens computed now and tokens already in its KV cache.
struct SeqShape {
  std::int64_t new_tokens = 0;
  std::int64_t cached_tokens = 0;
};

// A batch: the aggregates that fully determine its op counts (kept as sums
// so a decode instance can update them in O(1) per step instead of
// rebuilding) and, for a cost model that runs the batch (the real-kernel
// model executes each sequence at its own length), every sequence's shape.
struct BatchStats {
  std::int64_t new_tokens = 0;        // all sequences (GEMM m)
  std::int64_t logit_rows = 0;        // sequences that emit a token this step
  std::int64_t prefill_seqs = 0;      // sequences with new_tokens > 1
  std::int64_t prefill_tokens = 0;
  double prefill_pairs = 0;           // sum of causal query-key pairs
  double prefill_kv_tokens = 0;       // sum of (cached + new) over prefill seqs
  std::int64_t decode_seqs = 0;       // sequences with new_tokens == 1
  double decode_kv_tokens = 0;        // sum of (cached + 1) over decode seqs
  // Every sequence, in batch order, when keep_seqs (add() appends). The
  // simulator turns it off for cost models that price aggregates only
  // (CostModel::needs_sequences()): a decode step then costs O(1), not O(batch).
  std::vector<SeqShape> seqs;
  bool keep_seqs = true;

  void add(const SeqShape& s, bool emits_token = true);
  void clear();  // an empty batch; keeps keep_seqs and seqs' capacity (the simulator reuses one per instance)
};

BatchStats stats_of(const std::vector<SeqShape>& seqs);

enum class OpClass { kGemm, kAttentionPrefill, kAttentionDecode, kElementwise, kAllReduce, kP2P };

// Names of the elementwise ops build_ops emits (calibrated per op: their
// efficiencies differ by 10x, e.g. SiLU's exp vs a norm's adds).
inline constexpr const char* kElementwiseOpNames[] = {"kv_append_rope", "mlp_silu_mul", "mlp_activation",
                                                     "norms_residual", "embedding"};
const char* op_class_name(OpClass c);

struct Op {
  const char* name;
  OpClass op_class;
  double flops = 0;     // per instance of the op, per GPU
  double bytes = 0;     // HBM bytes per instance (for comm ops: message bytes)
  int count = 1;        // how many times it runs in the batch (e.g. once per layer)
  int kernels = 1;      // kernel launches per instance (for launch overhead)
  // GEMM shape (per GPU) for table-driven cost models; elementwise ops: m =
  // the token rows they run over (their measured tables are per token); zero otherwise.
  std::int64_t m = 0, n = 0, k = 0;
  int group_gpus = 1;   // GPUs taking part in a collective
  // Attention shape (per GPU) for table-driven cost models; zero otherwise.
  std::int64_t seqs = 0;           // sequences in the batch's attention
  int heads = 0, kv_heads = 0, head_dim = 0;
  double pairs = 0;                // prefill: causal query-key pairs, summed over sequences
  double kv_tokens = 0;            // decode: KV tokens read, summed over sequences
};

struct Parallelism {
  int tp = 1;
  int pp = 1;
};

// Appends the ops of one batch to `out` (cleared first).
// REQUIRES: tp divides heads; heads/tp, kv_heads sharded (replicated when kv_heads < tp).
// Every op but the two attention ops depends on new_tokens and logit_rows
// alone (BatchPricer relies on it: tests/test_batch_pricer.cc).
void build_ops(const ModelSpec& model, const Parallelism& par, const BatchStats& batch, std::vector<Op>& out);
// The batch's attention ops, as build_ops emits them
// (REQUIRES: prefill_seqs > 0, decode_seqs > 0 respectively).
Op prefill_attention_op(const ModelSpec& model, const Parallelism& par, const BatchStats& batch);
Op decode_attention_op(const ModelSpec& model, const Parallelism& par, const BatchStats& batch);

// Weight bytes one GPU holds (K/V projections replicated when kv_heads < tp;
// the rest split evenly over tp x pp), and KV bytes per token one GPU holds.
double weight_bytes_per_gpu(const ModelSpec& model, const Parallelism& par);
double kv_bytes_per_token_per_gpu(const ModelSpec& model, const Parallelism& par);

}  // namespace pdsim
