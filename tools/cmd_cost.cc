#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "sim/cost/factory.h"
#include "sim/cost/real_kernel.h"
#include "sim/core/error.h"
#include "sim/hw/gpu_spec.h"
#include "sim/model/model_spec.h"
#include "tools/commands.h"

namespace pdsim::cli {

namespace {

struct CostOptions {
  std::string model, gpu, prefill, decode, cost_model = "roofline";
  int tp = 1, pp = 1;
  bool json = false;
  // --cost-model real only. Ten timed runs (the minimum per op), as validate's
  // op breakdown: one batch is cheap to repeat, and one run carries a burst
  // of host noise into the answer.
  RealKernelOptions real = [] {
    RealKernelOptions r;
    r.iters = 10;
    return r;
  }();
  bool real_option_given = false;
};

// "LEN[xCOUNT],..." -> sequences. For --decode, LEN is the context (tokens
// whose KV is read, including the one being decoded). For --prefill, LEN is
// the new tokens, optionally after a cached prefix: LEN+PREFIX (a later chunk
// of a chunked prefill, or a prompt whose prefix was cached).
std::vector<SeqShape> parse_shapes(const std::string& text, bool decode, const char* flag) {
  std::vector<SeqShape> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    long long len = 0, count = 1, prefix = 0;
    char* end = nullptr;
    // Digits only where a number goes (strtoll alone would take signs and spaces).
    auto digit = [](const char* c) { return std::isdigit(static_cast<unsigned char>(*c)) != 0; };
    len = std::strtoll(item.c_str(), &end, 10);
    bool ok = digit(item.c_str());
    if (ok && !decode && *end == '+') {
      const char* prefix_start = end + 1;
      prefix = std::strtoll(prefix_start, &end, 10);
      ok = digit(prefix_start);
    }
    if (ok && *end == 'x') {
      const char* count_start = end + 1;
      count = std::strtoll(count_start, &end, 10);
      ok = digit(count_start);
    }
    ok = ok && *end == '\0';
    if (!ok || len < 1 || count < 1 || count > 1'000'000 || prefix < 0 || len + prefix > (1LL << 30))
      throw InputError(std::string(flag) + " " + text,
                       decode ? "expected CONTEXT[xCOUNT],... with CONTEXT, COUNT >= 1, got \"" + item + "\""
                              : "expected LEN[+PREFIX][xCOUNT],... with LEN, COUNT >= 1, PREFIX >= 0, got \"" + item +
                                    "\"");
    for (long long i = 0; i < count; ++i)
      out.push_back(decode ? SeqShape{1, len - 1} : SeqShape{len, prefix});
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

int cost(const CostOptions& o, const GlobalOptions& g) {
  if (o.prefill.empty() == o.decode.empty())
    throw InputError("pdsim cost", "give exactly one of --prefill or --decode");
  if (o.real_option_given && o.cost_model != "real")
    throw InputError("--cost-model " + o.cost_model,
                     "--backend, --threads, --iters and --layers configure the real-kernel model: add --cost-model real");
  ModelCatalog catalog;
  catalog.load_file(g.data_dir + "/profiles/models.json");
  const ModelSpec& model = catalog.get(o.model, "--model");
  GpuCatalog gpus(g.data_dir + "/profiles/gpus");
  const GpuSpec& gpu = gpus.get(o.gpu, "--gpu");
  if (model.heads % o.tp != 0)
    throw InputError("--tp", "must divide " + model.name + "'s " + std::to_string(model.heads) + " heads");
  if (model.kv_heads % o.tp != 0 && o.tp % model.kv_heads != 0)
    throw InputError("--tp", "must divide " + model.name + "'s " + std::to_string(model.kv_heads) +
                                 " KV heads or be a multiple of it");
  if (o.pp > model.layers) throw InputError("--pp", "exceeds the model's layer count");
  const bool decode = !o.decode.empty();
  const auto seqs = parse_shapes(decode ? o.decode : o.prefill, decode, decode ? "--decode" : "--prefill");
  const BatchStats stats = stats_of(seqs);
  std::int64_t cached = 0;  // tokens in the KV cache before this step (prefixes; decode: context - 1)
  for (const SeqShape& s : seqs) cached += s.cached_tokens;
  std::vector<Op> ops;
  build_ops(model, Parallelism{o.tp, o.pp}, stats, ops);
  const auto cost_model = make_cost_model(o.cost_model, gpu, model, "--cost-model", g.data_dir, o.real);
  const CostBreakdown b = cost_model->batch_breakdown(model, Parallelism{o.tp, o.pp}, stats, ops);
  // What ran the kernels, for --cost-model real (a number without its machine is no measurement).
  const auto* real = dynamic_cast<const RealKernelCostModel*>(cost_model.get());

  if (o.json) {
    nlohmann::ordered_json j;
    j["model"] = model.name;
    j["gpu"] = gpu.name;
    j["tp"] = o.tp;
    j["pp"] = o.pp;
    j["phase"] = decode ? "decode" : "prefill";
    j["sequences"] = seqs.size();
    j["new_tokens"] = stats.new_tokens;
    j["cached_tokens"] = cached;
    j["cost_model"] = cost_model->name();
    if (real)
      j["real_kernel"] = {{"backend", real->backend_name()}, {"device", real->device()},
                          {"threads", o.real.threads},       {"iters", o.real.iters},
                          {"layers", real->layers_run()}};
    j["total_s"] = b.total_s;
    j["ops"] = nlohmann::ordered_json::array();
    for (const auto& p : b.ops)
      j["ops"].push_back({{"name", p.op.name},
                          {"class", op_class_name(p.op.op_class)},
                          {"count", p.op.count},
                          {"flops", p.op.flops * p.op.count},
                          {"bytes", p.op.bytes * p.op.count},
                          {"time_s", p.price.time_s},
                          {"bound", p.price.bound},
                          {"source", p.price.source}});
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  const std::string prefix_note =
      !decode && cached > 0 ? " (" + std::to_string(stats.new_tokens) + " new tokens after " + std::to_string(cached) +
                                  " cached)"
                            : "";
  std::printf("%s on %s (tp=%d, pp=%d), %s of %zu sequences%s, cost model %s\n", model.name.c_str(),
              gpu.name.c_str(), o.tp, o.pp, decode ? "decode step" : "prefill", seqs.size(), prefix_note.c_str(),
              cost_model->name().c_str());
  if (real)
    std::printf("executed on %s (%s), minimum of %d timed runs per op, layers: %s\n", real->backend_name().c_str(),
                real->device().c_str(), o.real.iters, real->layers_run().c_str());
  std::printf("%-18s %6s %12s %12s %12s %6s  %-9s %s\n", "op", "count", "GFLOP", "MB", "time_ms", "share", "bound",
              "source");
  for (const auto& p : b.ops)
    std::printf("%-18s %6d %12.3f %12.3f %12.4f %5.1f%%  %-9s %s\n", p.op.name, p.op.count,
                p.op.flops * p.op.count * 1e-9, p.op.bytes * p.op.count * 1e-6, p.price.time_s * 1e3,
                100 * p.price.time_s / b.total_s, p.price.bound, p.price.source);
  std::printf("total %.4f ms (per GPU; FLOPs and bytes are per GPU)\n", b.total_s * 1e3);
  return 0;
}

}  // namespace

Command add_cost_command(CLI::App& app, const GlobalOptions& global) {
  auto o = std::make_shared<CostOptions>();
  app.add_option("--model", o->model, "catalog model name")->required();
  app.add_option("--gpu", o->gpu, "GPU profile name (profiles/gpus/<name>.json)")->required();
  app.add_option("--tp", o->tp, "tensor parallel degree")->check(CLI::PositiveNumber);
  app.add_option("--pp", o->pp, "pipeline parallel degree")->check(CLI::PositiveNumber);
  app.add_option("--prefill", o->prefill,
                 "prompts: LEN[+PREFIX][xCOUNT],...  e.g. 1024x4; 512+3584 = 512 new tokens after 3584 cached");
  app.add_option("--decode", o->decode, "decode step: CONTEXT[xCOUNT],...  e.g. 2048x64");
  app.add_option("--cost-model", o->cost_model, "cost model")->check(CLI::IsMember(cost_model_names()));
  app.add_flag("--json", o->json, "print one JSON object");
  const std::vector<CLI::Option*> real_options = {
      app.add_option("--backend", o->real.backend, "cost model real: kernel backend (default auto: CUDA if present)")
          ->check(CLI::IsMember({"auto", "cpu", "cuda"})),
      app.add_option("--threads", o->real.threads, "cost model real: CPU backend threads (default 0: all cores)")
          ->check(CLI::NonNegativeNumber),
      app.add_option("--iters", o->real.iters, "cost model real: timed runs, minimum per op (default 10)")
          ->check(CLI::PositiveNumber),
      app.add_option("--layers", o->real.layers, "cost model real: one (one layer x L, default) | all | auto")
          ->check(CLI::IsMember({"one", "all", "auto"}))};
  return [o, &global, real_options] {
    for (const CLI::Option* opt : real_options) o->real_option_given = o->real_option_given || opt->count() > 0;
    return cost(*o, global);
  };
}

}  // namespace pdsim::cli
