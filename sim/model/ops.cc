#include "sim/model/ops.h"

#include <algorithm>

#include "sim/core/error.h"

namespace pdsim {

void BatchStats::add(const SeqShape& s, bool emits_token) {
  if (keep_seqs) seqs.push_back(s);
  new_tokens += s.new_tokens;
  if (emits_token) ++logit_rows;
  const double n = static_cast<double>(s.new_tokens), c = static_cast<double>(s.cached_tokens);
  if (s.new_tokens > 1) {
    ++prefill_seqs;
    prefill_tokens += s.new_tokens;
    prefill_pairs += n * c + n * (n + 1) / 2;
    prefill_kv_tokens += n + c;
  } else if (s.new_tokens == 1) {
    ++decode_seqs;
    decode_kv_tokens += c + 1;
  }
}

void BatchStats::clear() {
  std::vector<SeqShape> kept = std::move(seqs);
  kept.clear();
  const bool keep = keep_seqs;
  *this = BatchStats{};
  seqs = std::move(kept);
  keep_seqs = keep;
}

BatchStats stats_of(const std::vector<SeqShape>& seqs) {
  BatchStats b;
  for (const auto& s : seqs) b.add(s);
  return b;
}

const char* op_class_name(OpClass c) {
  switch (c) {
    case OpClass::kGemm: return "gemm";
    case OpClass::kAttentionPrefill: return "attention_prefill";
    case OpClass::kAttentionDecode: return "attention_decode";
    case OpClass::kElementwise: return "elementwise";
    case OpClass::kAllReduce: return "allreduce";
    case OpClass::kP2P: return "p2p";
  }
  return "?";
}

namespace {
int kv_heads_per_gpu(const ModelSpec& m, int tp) { return std::max(1, m.kv_heads / tp); }

Op gemm(const char* name, std::int64_t m, std::int64_t n, std::int64_t k, int count, int weight_bytes,
        int act_bytes) {
  Op op{name, OpClass::kGemm};
  const double md = m, nd = n, kd = k;
  op.flops = 2 * md * nd * kd;
  op.bytes = weight_bytes * nd * kd + act_bytes * (md * kd + md * nd);
  op.count = count;
  op.m = m;
  op.n = n;
  op.k = k;
  return op;
}

// Attention on this GPU's heads: `query_rows` rows of Q in and O out, K and V
// of `kv_tokens` tokens read, `pairs` query-key pairs (QK^T and PV).
Op attention(const char* name, OpClass op_class, const ModelSpec& model, int tp, std::int64_t query_rows,
             std::int64_t seqs, double pairs, double kv_tokens) {
  const std::int64_t hd = model.head_dim;
  const std::int64_t q_heads = model.heads / tp, kv_heads = kv_heads_per_gpu(model, tp);
  Op op{name, op_class};
  op.flops = 4.0 * q_heads * hd * pairs;
  op.bytes = model.kv_bytes * 2.0 * kv_heads * hd * kv_tokens                          // read K,V
             + model.act_bytes * 2.0 * q_heads * hd * static_cast<double>(query_rows);  // Q in, O out
  op.count = model.layers;
  op.m = query_rows;
  op.seqs = seqs;
  op.heads = static_cast<int>(q_heads);
  op.kv_heads = static_cast<int>(kv_heads);
  op.head_dim = static_cast<int>(hd);
  return op;
}
}  // namespace

double weight_bytes_per_gpu(const ModelSpec& model, const Parallelism& par) {
  // K/V projections are split by KV head; with kv_heads < tp each GPU keeps a
  // whole head, so the TP group holds kv_heads_per_gpu x tp heads' worth.
  const double extra_heads = static_cast<double>(kv_heads_per_gpu(model, par.tp)) * par.tp - model.kv_heads;
  const double per_kv_head = 2.0 * model.head_dim * (model.hidden + (model.bias == BiasKind::kNone ? 0 : 1));
  const double replicated = static_cast<double>(model.layers) * extra_heads * per_kv_head * model.weight_bytes;
  return (model.weight_bytes_total() + replicated) / (static_cast<double>(par.tp) * par.pp);
}

double kv_bytes_per_token_per_gpu(const ModelSpec& model, const Parallelism& par) {
  // Each GPU holds its KV heads for its stage's layers.
  const double per_layer = 2.0 * kv_heads_per_gpu(model, par.tp) * model.head_dim * model.kv_bytes;
  // The stage with the most layers binds: ceil(layers / pp).
  return per_layer * ((model.layers + par.pp - 1) / par.pp);
}

Op prefill_attention_op(const ModelSpec& model, const Parallelism& par, const BatchStats& b) {
  Op op = attention("attention_prefill", OpClass::kAttentionPrefill, model, par.tp, b.prefill_tokens, b.prefill_seqs,
                    b.prefill_pairs, b.prefill_kv_tokens);
  op.pairs = b.prefill_pairs;
  return op;
}

Op decode_attention_op(const ModelSpec& model, const Parallelism& par, const BatchStats& b) {
  // One new token per sequence attends to all its tokens: pairs = KV tokens.
  Op op = attention("attention_decode", OpClass::kAttentionDecode, model, par.tp, b.decode_seqs, b.decode_seqs,
                    b.decode_kv_tokens, b.decode_kv_tokens);
  op.kv_tokens = b.decode_kv_tokens;
  return op;
}

void build_ops(const ModelSpec& model, const Parallelism& par, const BatchStats& b, std::vector<Op>& out) {
  out.clear();
  PDSIM_CHECK(par.tp >= 1 && par.pp >= 1 && model.heads % par.tp == 0, "invalid parallelism");
  const int tp = par.tp, L = model.layers, wb = model.weight_bytes, ab = model.act_bytes,
            kvb = model.kv_bytes;
  const std::int64_t T = b.new_tokens;
  if (T <= 0) return;
  const std::int64_t hd = model.head_dim, h = model.hidden;
  const std::int64_t q_heads = model.heads / tp, kv_heads = kv_heads_per_gpu(model, tp);
  const std::int64_t ffn = model.ffn_hidden / tp;  // rounding down matches column-parallel shards
  const double Td = static_cast<double>(T), hdd = static_cast<double>(h);

  out.push_back(gemm("qkv_proj", T, (q_heads + 2 * kv_heads) * hd, h, L, wb, ab));

  if (b.prefill_seqs > 0) out.push_back(prefill_attention_op(model, par, b));
  if (b.decode_seqs > 0) out.push_back(decode_attention_op(model, par, b));
  {
    // KV append for the new tokens, RoPE on q and k.
    Op op{"kv_append_rope", OpClass::kElementwise};
    const double qk = static_cast<double>(q_heads + kv_heads) * hd;
    op.flops = 6.0 * Td * qk;
    op.bytes = 2.0 * ab * Td * qk + kvb * 2.0 * kv_heads * hd * Td;
    op.count = L;
    op.kernels = 2;
    op.m = T;
    out.push_back(op);
  }
  out.push_back(gemm("o_proj", T, h, q_heads * hd, L, wb, ab));
  out.push_back(gemm(model.gated() ? "mlp_gate_up" : "mlp_up", T, (model.gated() ? 2 : 1) * ffn, h, L, wb, ab));
  {
    Op op{model.gated() ? "mlp_silu_mul" : "mlp_activation", OpClass::kElementwise};
    const double elems = Td * static_cast<double>(ffn);
    op.flops = (model.gated() ? 6.0 : 4.0) * elems;
    op.bytes = ab * elems * (model.gated() ? 3.0 : 2.0);
    op.count = L;
    op.m = T;
    out.push_back(op);
  }
  out.push_back(gemm("mlp_down", T, h, ffn, L, wb, ab));
  {
    // Two norms, each with the residual add before it in the same kernel, as
    // serving engines run them (vLLM's fused_add_rms_norm): each reads the
    // sublayer's output and the residual stream, writes the stream and the
    // normalized rows. (A model's first norm has no add, its final norm one.)
    Op op{"norms_residual", OpClass::kElementwise};
    op.flops = 2 * 5.0 * Td * hdd + 2 * Td * hdd;
    op.bytes = ab * Td * hdd * (2 * 4);
    op.count = L;
    op.kernels = 2;
    op.m = T;
    out.push_back(op);
  }
  if (tp > 1) {
    Op op{"tp_allreduce", OpClass::kAllReduce};
    op.bytes = ab * Td * hdd;
    op.count = 2 * L;
    op.group_gpus = tp;
    out.push_back(op);
  }
  {
    Op op{"embedding", OpClass::kElementwise};
    op.bytes = 2.0 * ab * Td * hdd;
    op.count = 1;
    op.m = T;
    out.push_back(op);
  }
  if (b.logit_rows > 0) {
    out.push_back(gemm("lm_head", b.logit_rows, model.vocab / tp, h, 1, wb, ab));
  }
  if (par.pp > 1) {
    Op op{"pp_handoff", OpClass::kP2P};
    op.bytes = ab * Td * hdd;
    op.count = par.pp - 1;
    out.push_back(op);
  }
}

}  // namespace pdsim
