#include "kernels/layer_executor.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "kernels/check.h"
#include "sim/model/model_spec.h"

namespace pdsim::kernels {

LayerDims layer_dims(const ModelSpec& m, int tp, const std::string& where) {
  if (tp < 1 || m.heads % tp != 0)
    throw InputError(where, "tp=" + std::to_string(tp) + " does not divide the " + std::to_string(m.heads) +
                                " heads of " + m.name);
  if (!m.gated())
    throw InputError(where, "the real-kernel mode runs gated-SiLU (Llama-style) MLPs only; " + m.name +
                                " has a non-gated MLP");
  LayerDims d;
  d.model = m.name;
  d.layers = m.layers;
  d.hidden = m.hidden;
  d.heads = m.heads / tp;
  d.kv_heads = std::max(1, m.kv_heads / tp);
  d.head_dim = m.head_dim;
  d.ffn = m.ffn_hidden / tp;
  d.vocab = m.vocab / tp;
  return d;
}

std::int64_t LayerBatch::tokens() const {
  std::int64_t t = static_cast<std::int64_t>(decode_ctx.size());
  for (int l : prefill_lens) t += l;
  return t;
}

double LayerTiming::layer_s() const {
  double t = 0;
  for (const auto& o : ops) t += o.time_s;
  return t;
}
double LayerTiming::op_s(const std::string& name) const {
  for (const auto& o : ops)
    if (o.name == name) return o.time_s;
  return 0;
}

double layer_weight_bytes(const LayerDims& d, DType dt) {
  const double h = d.hidden, qd = static_cast<double>(d.heads) * d.head_dim,
               kvd = static_cast<double>(d.kv_heads) * d.head_dim, f = d.ffn;
  return static_cast<double>(dtype_bytes(dt)) * (h * (qd + 2 * kvd) + qd * h + 2 * f * h + f * h + 2 * h);
}
double lm_head_bytes(const LayerDims& d, DType dt) {
  return static_cast<double>(dtype_bytes(dt)) * d.vocab * static_cast<double>(d.hidden);
}

namespace {
// Small nonzero pseudo-random values in [-scale, -scale/10] U [scale/10, scale].
void fill(Backend& b, Tensor& t, float scale, std::uint32_t seed) { b.fill_random(t, scale, seed); }
}  // namespace

struct LayerExecutor::Buffers {
  struct Weights {
    Tensor wqkv;  // [q; k; v] stacked: the fused projection
    Tensor wo, gate_up, down, norm1, norm2;
  };
  std::vector<Weights> w;    // one layer: rotating copies; all layers: layer l's weights
  std::vector<Tensor> x_in;  // layer inputs (one layer: one per weight copy; all layers: layer 0's)
  Tensor lm_head, logits;
  Tensor resid;  // the residual stream the fused add + norms update
  Tensor xn, q, k, v, attn, h1, xn2, gu, act, y;
  Tensor qkv;  // the fused projection's output, copied into q, k, v
  Tensor qd, od;
  std::vector<Tensor> kc, vc;  // paged KV caches: one (one layer) or one per layer
  // Prefill sequences' keys, prefix then new tokens (LayerBatch): like kc, vc.
  std::vector<Tensor> kctx, vctx;
  Tensor cu, bt, cl, slots, pos;
  Tensor cu_k, ctx_slots;  // prefill key offsets; each new token's row in kctx
  std::int64_t cap_logits = 0, cap_tokens = 0, cap_decode = 0, cap_blocks = 0, cap_seqs = 0, cap_table = 0;
  std::int64_t cap_ctx = 0;
  bool warm = false;
  int rotation = 0;  // next weight/input copy to use
};

LayerExecutor::LayerExecutor(Backend& backend, LayerDims dims, ExecutorOptions opt)
    : backend_(backend), dims_(std::move(dims)), opt_(opt), buf_(std::make_unique<Buffers>()) {
  PDSIM_KCHECK(dims_.layers >= 1 && dims_.hidden > 0 && dims_.heads > 0 && dims_.kv_heads > 0 &&
                   dims_.heads % dims_.kv_heads == 0 && dims_.head_dim > 0 && dims_.ffn > 0 && dims_.vocab > 0,
               "bad layer dims");
  PDSIM_KCHECK(opt_.iters >= 1 && opt_.warmup_iters >= 0 && opt_.block_tokens >= 1, "bad executor options");
  const auto dt = backend_.compute_dtype();
  const std::int64_t h = dims_.hidden, qd = static_cast<std::int64_t>(dims_.heads) * dims_.head_dim,
                     kvd = static_cast<std::int64_t>(dims_.kv_heads) * dims_.head_dim, f = dims_.ffn;
  const double layer_bytes = layer_weight_bytes(dims_, dt);
  const int copies = opt_.all_layers ? dims_.layers
                                     : std::clamp(static_cast<int>(std::ceil(opt_.rotate_bytes / layer_bytes)), 2,
                                                  std::max(2, dims_.layers));
  const float ws = 1.0f / std::sqrt(static_cast<float>(h));
  std::uint32_t seed = 1;
  for (int c = 0; c < copies; ++c) {
    Buffers::Weights w;
    w.wqkv = backend_.allocate({qd + 2 * kvd, h}, dt);
    w.wo = backend_.allocate({h, qd}, dt);
    w.gate_up = backend_.allocate({2 * f, h}, dt);
    w.down = backend_.allocate({h, f}, dt);
    w.norm1 = backend_.allocate({h}, dt);
    w.norm2 = backend_.allocate({h}, dt);
    for (Tensor* t : {&w.wqkv, &w.wo, &w.gate_up, &w.down}) fill(backend_, *t, ws, seed++);
    fill(backend_, w.norm1, 1.0f, seed++);
    fill(backend_, w.norm2, 1.0f, seed++);
    buf_->w.push_back(std::move(w));
  }
  buf_->x_in.resize(opt_.all_layers ? 1 : copies);
  buf_->kc.resize(opt_.all_layers ? dims_.layers : 1);
  buf_->vc.resize(buf_->kc.size());
  buf_->kctx.resize(buf_->kc.size());
  buf_->vctx.resize(buf_->kc.size());
  buf_->lm_head = backend_.allocate({dims_.vocab, h}, dt);
  fill(backend_, buf_->lm_head, ws, seed++);
}

LayerExecutor::~LayerExecutor() = default;

int LayerExecutor::copies() const { return static_cast<int>(buf_->w.size()); }

LayerTiming LayerExecutor::run(const LayerBatch& batch) {
  Backend& b = backend_;
  Buffers& B = *buf_;
  const auto dt = b.compute_dtype();
  const LayerDims& d = dims_;
  const int bt = opt_.block_tokens;
  const std::int64_t P = std::accumulate(batch.prefill_lens.begin(), batch.prefill_lens.end(), std::int64_t{0});
  const std::int64_t D = static_cast<std::int64_t>(batch.decode_ctx.size());
  const std::int64_t T = P + D;
  PDSIM_KCHECK(T >= 1, "empty batch");
  PDSIM_KCHECK(batch.logit_rows >= 0 && batch.logit_rows <= T, "logit_rows exceeds the batch's rows");
  for (int l : batch.prefill_lens) PDSIM_KCHECK(l >= 1, "prefill length < 1");
  for (int c : batch.decode_ctx) PDSIM_KCHECK(c >= 1, "decode context < 1");
  PDSIM_KCHECK(batch.prefill_prefix.empty() || batch.prefill_prefix.size() == batch.prefill_lens.size(),
               "prefill_prefix must be empty or give one prefix per prefill sequence");
  auto prefix_of = [&](std::size_t s) { return batch.prefill_prefix.empty() ? 0 : batch.prefill_prefix[s]; };
  std::int64_t prefix_tokens = 0;  // cached keys before the prefill sequences' new tokens
  for (std::size_t s = 0; s < batch.prefill_prefix.size(); ++s) {
    PDSIM_KCHECK(batch.prefill_prefix[s] >= 0 &&
                     static_cast<std::int64_t>(batch.prefill_prefix[s]) + batch.prefill_lens[s] <= INT32_MAX,
                 "prefill prefix < 0 or too long");
    prefix_tokens += batch.prefill_prefix[s];
  }
  const bool has_prefix = prefix_tokens > 0;
  const std::int64_t h = d.hidden, H = d.heads, KH = d.kv_heads, hd = d.head_dim, f = d.ffn;

  // ---- buffers (grown, never shrunk)
  bool grew = false;
  if (T > B.cap_tokens) {
    const std::int64_t cap = std::max<std::int64_t>(T, B.cap_tokens * 5 / 4);
    std::uint32_t seed = 1000;
    for (auto& x : B.x_in) {
      x = b.allocate({cap, h}, dt);
      fill(b, x, 1.0f, seed++);
    }
    B.resid = b.allocate({cap, h}, dt);
    fill(b, B.resid, 1.0f, seed++);
    B.xn = b.allocate({cap, h}, dt);
    B.q = b.allocate({cap, H, hd}, dt);
    B.qkv = b.allocate({cap, (H + 2 * KH) * hd}, dt);
    B.k = b.allocate({cap, KH, hd}, dt);
    B.v = b.allocate({cap, KH, hd}, dt);
    B.attn = b.allocate({cap, H, hd}, dt);
    B.h1 = b.allocate({cap, h}, dt);
    B.xn2 = b.allocate({cap, h}, dt);
    B.gu = b.allocate({cap, 2 * f}, dt);
    B.act = b.allocate({cap, f}, dt);
    B.y = b.allocate({cap, h}, dt);
    B.slots = b.allocate({cap}, DType::kI32);
    B.pos = b.allocate({cap}, DType::kI32);
    B.cap_tokens = cap;
    grew = true;
  }
  // Decode q/out of a mixed batch live in their own buffers (no tensor views).
  if (P > 0 && D > B.cap_decode) {
    const std::int64_t cap = std::max<std::int64_t>(D, B.cap_decode * 5 / 4);
    B.qd = b.allocate({cap, H, hd}, dt);
    fill(b, B.qd, 1.0f, 77);
    B.od = b.allocate({cap, H, hd}, dt);
    B.cap_decode = cap;
    grew = true;
  }
  std::int64_t blocks = 0;
  int max_blocks_per_seq = 1, max_ctx = 1, max_len = 1;
  for (std::size_t s = 0; s < batch.prefill_lens.size(); ++s) {
    const int l = batch.prefill_lens[s];
    blocks += (prefix_of(s) + l + bt - 1) / bt;
    max_len = std::max(max_len, l);
  }
  for (int c : batch.decode_ctx) {
    blocks += (c + bt - 1) / bt;
    max_blocks_per_seq = std::max(max_blocks_per_seq, (c + bt - 1) / bt);
    max_ctx = std::max(max_ctx, c);
  }
  if (blocks > B.cap_blocks) {
    const std::int64_t cap = std::max<std::int64_t>(blocks, B.cap_blocks * 5 / 4);
    for (std::size_t l = 0; l < B.kc.size(); ++l) {
      B.kc[l] = b.allocate({cap, bt, KH, hd}, dt);
      B.vc[l] = b.allocate({cap, bt, KH, hd}, dt);
      fill(b, B.kc[l], 1.0f, static_cast<std::uint32_t>(91 + 2 * l));
      fill(b, B.vc[l], 1.0f, static_cast<std::uint32_t>(92 + 2 * l));
    }
    B.cap_blocks = cap;
    grew = true;
  }
  const std::int64_t seqs = static_cast<std::int64_t>(batch.prefill_lens.size()) + 1;
  if (seqs > B.cap_seqs) {
    B.cu = b.allocate({seqs}, DType::kI32);
    B.cu_k = b.allocate({seqs}, DType::kI32);
    B.cl = b.allocate({std::max<std::int64_t>(seqs, D)}, DType::kI32);
    B.cap_seqs = seqs;
  }
  if (has_prefix && P + prefix_tokens > B.cap_ctx) {
    const std::int64_t cap = std::max<std::int64_t>(P + prefix_tokens, B.cap_ctx * 5 / 4);
    for (std::size_t l = 0; l < B.kctx.size(); ++l) {
      B.kctx[l] = b.allocate({cap, KH, hd}, dt);
      B.vctx[l] = b.allocate({cap, KH, hd}, dt);
      fill(b, B.kctx[l], 1.0f, static_cast<std::uint32_t>(191 + 2 * l));
      fill(b, B.vctx[l], 1.0f, static_cast<std::uint32_t>(192 + 2 * l));
    }
    B.cap_ctx = cap;
    grew = true;
  }
  if (has_prefix && P > B.ctx_slots.numel()) B.ctx_slots = b.allocate({B.cap_tokens}, DType::kI32);
  if (batch.logit_rows > B.cap_logits) {
    B.cap_logits = std::max<std::int64_t>(batch.logit_rows, B.cap_logits * 5 / 4);
    B.logits = b.allocate({B.cap_logits, d.vocab}, dt);
    grew = true;
  }
  if (D > B.cl.numel()) B.cl = b.allocate({D}, DType::kI32);
  if (std::max<std::int64_t>(D * max_blocks_per_seq, 1) > B.cap_table) {
    B.cap_table = std::max<std::int64_t>(D * max_blocks_per_seq, 1);
    B.bt = b.allocate({B.cap_table}, DType::kI32);
  }

  // ---- index arrays: blocks in a shuffled order, as a running engine's free list leaves them
  std::vector<std::int32_t> order(static_cast<std::size_t>(blocks));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(static_cast<unsigned>(blocks)));
  std::size_t next_block = 0;
  std::vector<std::int32_t> slots(static_cast<std::size_t>(B.slots.numel()), 0), pos(slots.size(), 0);
  std::vector<std::int32_t> cu(static_cast<std::size_t>(B.cu.numel()), 0), cu_k(cu.size(), 0);
  std::vector<std::int32_t> ctx_slots(static_cast<std::size_t>(has_prefix ? B.ctx_slots.numel() : 0), 0);
  std::vector<std::int32_t> table(static_cast<std::size_t>(B.bt.numel()), 0);
  std::vector<std::int32_t> lens(static_cast<std::size_t>(B.cl.numel()), 1);
  std::int64_t row = 0;
  for (std::size_t s = 0; s < batch.prefill_lens.size(); ++s) {
    const int l = batch.prefill_lens[s], prefix = prefix_of(s);
    cu[s + 1] = cu[s] + l;
    cu_k[s + 1] = cu_k[s] + prefix + l;
    const std::size_t first = next_block;
    next_block += (prefix + l + bt - 1) / bt;
    for (int t = 0; t < l; ++t, ++row) {
      const int p = prefix + t;  // the token's position: after its cached prefix
      slots[row] = order[first + p / bt] * bt + p % bt;
      pos[row] = p;
      if (has_prefix) ctx_slots[row] = cu_k[s] + p;
    }
  }
  for (std::int64_t s = 0; s < D; ++s, ++row) {
    const int c = batch.decode_ctx[s];
    const int nb = (c + bt - 1) / bt;
    for (int i = 0; i < nb; ++i) table[s * max_blocks_per_seq + i] = order[next_block + i];
    next_block += nb;
    lens[s] = c;
    slots[row] = table[s * max_blocks_per_seq + (c - 1) / bt] * bt + (c - 1) % bt;
    pos[row] = c - 1;
  }
  b.upload_i32(B.slots, slots.data());
  b.upload_i32(B.pos, pos.data());
  b.upload_i32(B.cu, cu.data());
  if (has_prefix) {
    b.upload_i32(B.cu_k, cu_k.data());
    b.upload_i32(B.ctx_slots, ctx_slots.data());
  }
  b.upload_i32(B.bt, table.data());
  b.upload_i32(B.cl, lens.data());

  // ---- the layer (or every layer), each op timed
  const char* names[] = {"qkv_proj",    "kv_append_rope", "attention_prefill", "attention_decode", "o_proj",
                         "mlp_gate_up", "mlp_silu_mul",   "mlp_down",          "norms_residual"};
  constexpr int kOps = 9;
  std::vector<std::vector<double>> samples(kOps);
  std::vector<double> lm_samples;
  const int warm = (!B.warm || grew) ? opt_.warmup_iters : 0;
  const int total = warm + opt_.iters;
  const int layers_run = opt_.all_layers ? d.layers : 1;
  for (int it = 0; it < total; ++it) {
    const int c = B.rotation++ % copies();
    double t[kOps] = {0};
    auto timed = [&](int op, auto&& fn) {
      b.timer_start();
      fn();
      t[op] += b.timer_stop_s();
    };
    for (int layer = 0; layer < layers_run; ++layer) {
      // One layer: weight copy c; all layers: layer l's own weights and KV
      // cache, fed by the previous layer's output (B.y, read before this
      // layer overwrites it in mlp_down).
      auto& w = B.w[static_cast<std::size_t>(opt_.all_layers ? layer : c)];
      Tensor& x = opt_.all_layers ? (layer == 0 ? B.x_in[0] : B.y) : B.x_in[static_cast<std::size_t>(c)];
      const std::size_t cache = static_cast<std::size_t>(opt_.all_layers ? layer : 0);
      Tensor& kc = B.kc[cache];
      Tensor& vc = B.vc[cache];
      // Both norms take the residual add before them (vLLM's fused_add_rms_norm):
      // the input norm adds the layer input (the previous layer's MLP output) to
      // the residual stream, the post-attention norm the attention output. (A
      // served model's first norm has no add and its final norm has one: the
      // same count per layer.)
      timed(8, [&] { b.rmsnorm({&x, &w.norm1, &B.xn, T, d.hidden, d.norm_eps, &B.resid}); });
      // qkv_proj is one fused GEMM, as serving engines run it (and as the op
      // list and the profile tables price it); the ops after it take
      // contiguous q, k and v (the backend has no strided views): untimed
      // column copies out of its output (a serving engine's kernels read the
      // strided views instead).
      const std::int64_t qkv_cols = (H + 2 * KH) * hd;
      timed(0, [&] { b.gemm({&B.xn, &w.wqkv, &B.qkv, T, qkv_cols, h}); });
      b.copy_columns({&B.qkv, &B.q, T, qkv_cols, 0, H * hd});
      b.copy_columns({&B.qkv, &B.k, T, qkv_cols, H * hd, KH * hd});
      b.copy_columns({&B.qkv, &B.v, T, qkv_cols, (H + KH) * hd, KH * hd});
      timed(1, [&] {
        b.rope({&B.q, &B.k, &B.pos, T, d.heads, d.kv_heads, d.head_dim, d.rope_theta});
        b.kv_append({&B.k, &B.v, &B.slots, &kc, &vc, T, d.kv_heads, d.head_dim, bt});
      });
      if (has_prefix) {
        // Untimed: the new tokens' K/V after their prefixes, where the attention kernel reads them (LayerBatch).
        b.kv_append({&B.k, &B.v, &B.ctx_slots, &B.kctx[cache], &B.vctx[cache], P, d.kv_heads, d.head_dim, 1});
      }
      if (P > 0)
        timed(2, [&] {
          const int n = static_cast<int>(batch.prefill_lens.size());
          if (has_prefix)
            b.prefill_attention({&B.q, &B.kctx[cache], &B.vctx[cache], &B.cu, &B.attn, n, d.heads, d.kv_heads,
                                 d.head_dim, P, max_len, &B.cu_k, P + prefix_tokens});
          else
            b.prefill_attention({&B.q, &B.k, &B.v, &B.cu, &B.attn, n, d.heads, d.kv_heads, d.head_dim, P, max_len});
        });
      if (D > 0)
        timed(3, [&] {
          Tensor* qd = P > 0 ? &B.qd : &B.q;
          Tensor* od = P > 0 ? &B.od : &B.attn;
          b.decode_attention({qd, &kc, &vc, &B.bt, &B.cl, od, static_cast<int>(D), d.heads, d.kv_heads, d.head_dim,
                              bt, max_blocks_per_seq, max_ctx});
        });
      timed(4, [&] { b.gemm({&B.attn, &w.wo, &B.h1, T, h, H * hd}); });
      timed(8, [&] { b.rmsnorm({&B.h1, &w.norm2, &B.xn2, T, d.hidden, d.norm_eps, &B.resid}); });
      timed(5, [&] { b.gemm({&B.xn2, &w.gate_up, &B.gu, T, 2 * f, h}); });
      timed(6, [&] { b.silu_gate({&B.gu, &B.act, T, d.ffn}); });
      timed(7, [&] { b.gemm({&B.act, &w.down, &B.y, T, h, f}); });
    }
    double lm = 0;
    if (batch.logit_rows > 0) {
      b.timer_start();
      b.gemm({&B.y, &B.lm_head, &B.logits, batch.logit_rows, d.vocab, h});
      lm = b.timer_stop_s();
    }
    if (it >= warm) {
      for (int o = 0; o < kOps; ++o) samples[o].push_back(t[o] / layers_run);  // per layer (mean over layers)
      lm_samples.push_back(lm);
    }
  }
  B.warm = true;

  // Minimum over the timed runs: on a shared machine other processes only add time.
  auto fastest = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
  LayerTiming out;
  out.layers = d.layers;
  out.layers_run = layers_run;
  for (int o = 0; o < kOps; ++o) {
    if (o == 2 && P == 0) continue;
    if (o == 3 && D == 0) continue;
    out.ops.push_back({names[o], fastest(samples[o])});
  }
  out.lm_head_s = fastest(lm_samples);
  return out;
}

}  // namespace pdsim::kernels
