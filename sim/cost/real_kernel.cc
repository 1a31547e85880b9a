#include "sim/cost/real_kernel.h"

#include <algorithm>
#include <cstdint>
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

kernels::LayerBatch RealKernelCostModel::map_batch(const BatchStats& b) {
  kernels::LayerBatch lb;
  std::vector<std::pair<int, int>> prefill;  // (new tokens, cached prefix)
  for (const SeqShape& s : b.seqs) {
    PDSIM_CHECK(s.new_tokens >= 1 && s.cached_tokens >= 0 && s.new_tokens + s.cached_tokens <= INT32_MAX,
                "a batch sequence the executor cannot run");
    if (s.new_tokens > 1)
      prefill.emplace_back(static_cast<int>(s.new_tokens), static_cast<int>(s.cached_tokens));
    else
      lb.decode_ctx.push_back(static_cast<int>(s.cached_tokens + 1));
  }
  std::sort(prefill.begin(), prefill.end());
  for (const auto& [n, prefix] : prefill) {
    lb.prefill_lens.push_back(n);
    lb.prefill_prefix.push_back(prefix);
  }
  std::sort(lb.decode_ctx.begin(), lb.decode_ctx.end());
  // Totals kept beside the list must describe it (a producer that set them directly would be priced wrong).
  PDSIM_CHECK(lb.tokens() == b.new_tokens && static_cast<std::int64_t>(lb.prefill_lens.size()) == b.prefill_seqs &&
                  static_cast<std::int64_t>(lb.decode_ctx.size()) == b.decode_seqs,
              "a batch whose sequence list does not match its totals");
  lb.logit_rows = std::min<std::int64_t>(b.logit_rows, lb.tokens());
  return lb;
}

const RealKernelCostModel::Measured& RealKernelCostModel::measure(RealBatchKey key) const {
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
      return it->second;
    }
  }
  auto& ex = executors_[key.tp];
  if (!ex) {
    kernels::ExecutorOptions eo;
    eo.iters = options_.iters;
    eo.warmup_iters = options_.warmup_iters;
    const kernels::LayerDims dims = kernels::layer_dims(model_, key.tp, where_);
    eo.all_layers = run_all_layers(dims);
    ex = std::make_unique<kernels::LayerExecutor>(*backend_, dims, eo);
  }
  kernels::LayerBatch lb;
  lb.prefill_lens = key.prefill_lens;
  lb.prefill_prefix = key.prefill_prefix;
  lb.decode_ctx = key.decode_ctx;
  lb.logit_rows = key.logit_rows;
  const kernels::LayerTiming t = ex->run(lb);
  ++measured_;
  Measured m;
  for (const auto& o : t.ops) m.per_layer_s[o.name] = o.time_s;
  m.lm_head_s = t.lm_head_s;
  if (options_.timings) {
    options_.timings->add(key, m);
    return *options_.timings->find(key);
  }
  if (options_.memo) return memo_[std::move(key)] = std::move(m);
  last_ = std::move(m);
  return last_;
}

CostBreakdown RealKernelCostModel::batch_breakdown(const ModelSpec& model, const Parallelism& par,
                                                   const BatchStats& b, const std::vector<Op>& ops) const {
  PDSIM_CHECK(model.name == model_.name, "real cost model built for another model");
  CostBreakdown out;
  if (ops.empty()) return out;
  kernels::LayerBatch lb = map_batch(b);
  const Measured& m = measure(
      {par.tp, std::move(lb.prefill_lens), std::move(lb.prefill_prefix), std::move(lb.decode_ctx), lb.logit_rows});
  for (const auto& op : ops) {
    OpPrice p;
    const std::string name = op.name;
    auto it = m.per_layer_s.find(name);
    if (name == "lm_head") {
      p = {m.lm_head_s * op.count, "measured", "real"};
    } else if (it != m.per_layer_s.end()) {
      // Per-layer ops: count = layers (every PP stage's layers run one after another).
      p = {it->second * op.count, "measured", "real"};
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
