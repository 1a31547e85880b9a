#include "sim/cost/real_kernel.h"

#include <cmath>
#include <cstdio>

#include "kernels/backend.h"
#include "kernels/layer_executor.h"
#include "sim/core/error.h"

namespace pdsim {

namespace {
std::unique_ptr<kernels::Backend> pick_backend(const std::string& which, int threads, const std::string& where) {
  if (which == "cpu") return kernels::make_cpu_backend(threads);
  std::string why;
  auto cuda = kernels::make_cuda_backend(&why);
  if (cuda) return cuda;
  if (which == "cuda") throw InputError(where, "the real cost model was asked for the CUDA backend: " + why);
  PDSIM_CHECK(which == "auto", "unknown backend " + which);
  return kernels::make_cpu_backend(threads);
}

// n items of near-equal size summing to total (the first total % n get one more).
std::vector<int> split(std::int64_t total, std::int64_t n) {
  std::vector<int> out(static_cast<std::size_t>(n), static_cast<int>(total / n));
  for (std::int64_t i = 0; i < total % n; ++i) ++out[static_cast<std::size_t>(i)];
  return out;
}
}  // namespace

RealKernelCostModel::RealKernelCostModel(const GpuSpec& gpu, const ModelSpec& model, const RealKernelOptions& options,
                                         const std::string& where)
    : roofline_(gpu, model.weight_bytes, where), options_(options), model_(model), where_(where) {
  if (options_.iters < 1 || options_.warmup_iters < 0)
    throw InputError(where, "real_kernel.iters must be >= 1 and warmup_iters >= 0");
  kernels::layer_dims(model, 1, where);  // rejects models the executor cannot run
  if (options_.layers != "one" && options_.layers != "all" && options_.layers != "auto")
    throw InputError(where, "real_kernel.layers must be one, all or auto, got \"" + options_.layers + "\"");
  backend_ = pick_backend(options_.backend, options_.threads, where);
  // Times measured layer by layer are not one layer's x L: a timings file binds to the mode too.
  if (options_.timings)
    options_.timings->bind_device(
        backend_->device() + (options_.layers == "one" ? "" : "; layers: " + options_.layers), where);
}

bool RealKernelCostModel::run_all_layers(const kernels::LayerDims& dims) const {
  if (options_.layers == "one") return false;
  const double gib = 1024.0 * 1024 * 1024;
  const auto dt = backend_->compute_dtype();
  const double weights = dims.layers * kernels::layer_weight_bytes(dims, dt) + kernels::lm_head_bytes(dims, dt);
  const double free = backend_->free_memory_bytes();
  if (options_.layers == "auto") return weights <= 0.5 * free;
  if (weights > 0.9 * free) {
    char msg[320];
    std::snprintf(msg, sizeof msg,
                  "real_kernel.layers \"all\" needs %.2f GiB for the weights of all %d layers of %s on one GPU, but "
                  "the %s backend has %.2f GiB free; use \"one\" (one layer x %d) or \"auto\"",
                  weights / gib, dims.layers, model_.name.c_str(), backend_->name().c_str(), free / gib, dims.layers);
    throw InputError(where_, msg);
  }
  return true;
}

RealKernelCostModel::~RealKernelCostModel() = default;

std::string RealKernelCostModel::backend_name() const { return backend_->name(); }
std::string RealKernelCostModel::device() const { return backend_->device(); }
std::string RealKernelCostModel::layers_run() const {
  std::string out;
  for (const auto& [tp, ex] : executors_) {
    const std::string mode = ex->options().all_layers ? "all" : "one";
    out = out.empty() || out == mode ? mode : "mixed";
  }
  return out;
}

OpPrice RealKernelCostModel::price(const Op& op) const { return roofline_.price(op); }

kernels::LayerBatch RealKernelCostModel::map_batch(const BatchStats& b, double* scale) {
  kernels::LayerBatch lb;
  double executed_pairs = 0;
  if (b.prefill_seqs > 0) {
    lb.prefill_lens = split(b.prefill_tokens, b.prefill_seqs);
    for (int l : lb.prefill_lens) executed_pairs += 0.5 * l * (l + 1.0);
  }
  if (b.decode_seqs > 0) {
    const auto kv = std::max<std::int64_t>(b.decode_seqs, std::llround(b.decode_kv_tokens));
    lb.decode_ctx = split(kv, b.decode_seqs);
  }
  lb.logit_rows = std::min<std::int64_t>(b.logit_rows, lb.tokens());
  if (scale) *scale = executed_pairs > 0 ? b.prefill_pairs / executed_pairs : 1.0;
  return lb;
}

const RealKernelCostModel::Measured& RealKernelCostModel::measure(const Parallelism& par,
                                                                  const BatchStats& b) const {
  const RealBatchKey key{par.tp, b.prefill_seqs, b.prefill_tokens, b.decode_seqs,
                         static_cast<std::int64_t>(std::llround(b.decode_kv_tokens)), b.logit_rows};
  if (options_.timings) {
    bool from_file = false;
    if (const Measured* known = options_.timings->find(key, &from_file)) {
      if (from_file)
        options_.timings->count_replay();
      else
        ++memo_hits_;  // measured earlier in this run
      return *known;
    }
  }
  if (options_.memo) {
    auto it = memo_.find(key);
    if (it != memo_.end()) {
      ++memo_hits_;
      // Chunked prefill: the pairs may differ at an equal key; rescale below uses this batch.
      return it->second;
    }
  }
  auto& ex = executors_[par.tp];
  if (!ex) {
    kernels::ExecutorOptions eo;
    eo.iters = options_.iters;
    eo.warmup_iters = options_.warmup_iters;
    const kernels::LayerDims dims = kernels::layer_dims(model_, par.tp, where_);
    eo.all_layers = run_all_layers(dims);
    ex = std::make_unique<kernels::LayerExecutor>(*backend_, dims, eo);
  }
  const kernels::LayerTiming t = ex->run(map_batch(b, nullptr));
  ++measured_;
  Measured m;
  for (const auto& o : t.ops) m.per_layer_s[o.name] = o.time_s;
  m.lm_head_s = t.lm_head_s;
  if (options_.timings) {
    options_.timings->add(key, m);
    return *options_.timings->find(key);
  }
  if (options_.memo) return memo_[key] = std::move(m);
  last_ = std::move(m);
  return last_;
}

CostBreakdown RealKernelCostModel::batch_breakdown(const ModelSpec& model, const Parallelism& par,
                                                   const BatchStats& b, const std::vector<Op>& ops) const {
  PDSIM_CHECK(model.name == model_.name, "real cost model built for another model");
  CostBreakdown out;
  if (ops.empty()) return out;
  double scale = 1;
  map_batch(b, &scale);
  const Measured& m = measure(par, b);
  for (const auto& op : ops) {
    OpPrice p;
    const std::string name = op.name;
    auto it = m.per_layer_s.find(name);
    if (name == "lm_head") {
      p = {m.lm_head_s * op.count, "measured", "real"};
    } else if (it != m.per_layer_s.end()) {
      // Per-layer ops: count = layers (every PP stage's layers run one after another).
      const double f = name == "attention_prefill" ? scale : 1.0;
      p = {it->second * f * op.count, "measured", "real"};
    } else {
      p = roofline_.price(op);
    }
    out.ops.push_back({op, p});
    out.total_s += p.time_s;
  }
  return out;
}

double RealKernelCostModel::batch_time_s(const ModelSpec& model, const Parallelism& par, const BatchStats& b,
                                         const std::vector<Op>& ops) const {
  return batch_breakdown(model, par, b, ops).total_s;
}

}  // namespace pdsim
