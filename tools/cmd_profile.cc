// pdsim profile: measure a compute backend (CPU or CUDA) on the GEMM and
// attention shapes a model needs and write
//   DIR/measured/<name>/{gemm_bf16,context_attention_bf16,generation_attention_bf16,allreduce,elementwise_<op>}.csv
// in the format the profiled cost model reads (sim/cost/profiled.h), and
//   DIR/gpus/<name>.json
// a device profile in the GPU-profile format (sim/hw/gpu_spec.cc) with the
// measured ceilings (large-GEMM FLOP/s, copy bandwidth, smallest-kernel
// time) and roofline factors fitted to the tables ("calibrated"), so the
// roofline can model this device. `--out profiles` installs both for use by
// scenarios (pool "gpu": "<name>"). Tables already in measured/<name>/ from an
// earlier `pdsim profile` (another model's shapes) are merged, not replaced,
// and the factors are fitted on all their rows; a directory holding tables
// from another source is refused before anything is measured.
// `--only decode-attention` sweeps and writes the generation attention table
// alone (no ceilings, no device profile): a quick A/B of decode kernel
// settings (tools/gpu_session.sh's split_ab and mma_ab steps).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "kernels/backend.h"
#include "kernels/device_info.h"
#include "kernels/layer_executor.h"
#include "sim/config/json_object.h"
#include "sim/core/error.h"
#include "sim/core/output_file.h"
#include "sim/cost/calibration.h"
#include "sim/cost/profiled.h"
#include "sim/model/model_spec.h"
#include "tools/commands.h"
#include "pdsim_source_revision.h"  // generated: tools/source_revision.cmake

namespace pdsim::cli {

namespace {

namespace k = kernels;

struct ProfileOptions {
  std::string backend = "cpu", model, out, name;
  int tp = 1, iters = 3, threads = 0, passes = 2;
  bool full = false;
  std::string only;  // "" (everything) or "decode-attention"
  bool refit = false;  // measure nothing: fit the factors again on the tables already there
};

// --name: it becomes a directory and a file name under --out, so no paths.
std::string profile_name(const ProfileOptions& o) {
  const std::string name = o.name.empty() ? (o.backend == "cpu" ? "host-cpu" : "cuda-device") : o.name;
  if (name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != std::string::npos ||
      name[0] == '.')
    throw InputError("--name " + name, "use letters, digits, '.', '_' and '-' only, not starting with '.'");
  return name;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// Filled on the backend itself (a 70B layer's weights are gigabytes).
k::Tensor filled(k::Backend& b, std::vector<std::int64_t> shape, float scale = 0.05f) {
  auto t = b.allocate(std::move(shape), b.compute_dtype());
  b.fill_random(t, scale, 12345);
  return t;
}
k::Tensor ints(k::Backend& b, const std::vector<std::int32_t>& v) {
  auto t = b.allocate({static_cast<std::int64_t>(v.size())}, k::DType::kI32);
  b.upload_i32(t, v.data());
  return t;
}

// Minimum seconds of `iters` timed calls after one warm-up (other processes only add time).
template <class Fn>
double time_op(k::Backend& b, int iters, Fn&& fn) {
  fn();
  b.synchronize();
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    b.timer_start();
    fn(i);
    t.push_back(b.timer_stop_s());
  }
  return *std::min_element(t.begin(), t.end());
}

struct Row {
  std::vector<double> key;
  double us;
};

// Copies of an operand of `bytes` to use in turn: >= 64 MiB in all. They are
// filled in order and the timed calls use the first few, so the later fills
// have pushed those out of every cache (CPU L3, GPU L2) by the time they are
// read, as in a model, where the other layers' weights and KV stream through
// between two calls of one layer's op. (Capped at 16 copies until 2026-11-25,
// which left operands under 4 MiB warm in the CPU's L3: decode attention and
// small GEMMs then timed 20-35% faster than the layer executor runs them.)
int rotation_copies(double bytes) {
  return static_cast<int>(std::clamp(std::ceil(64.0 * 1024 * 1024 / bytes), 2.0, 65536.0));
}

double gemm_us(k::Backend& b, int iters, std::int64_t m, std::int64_t n, std::int64_t kk) {
  // Weight copies used in turn (>= 64 MiB in all, as LayerExecutor rotates
  // layers), so a call does not find its weights in a cache the way one
  // layer of a real model, streaming every layer's weights, would not.
  auto x = filled(b, {m, kk});
  const double wbytes = static_cast<double>(n * kk * k::dtype_bytes(b.compute_dtype()));
  const int copies = rotation_copies(wbytes);
  std::vector<k::Tensor> w;
  for (int c = 0; c < copies; ++c) w.push_back(filled(b, {n, kk}));
  auto y = b.allocate({m, n}, b.compute_dtype());
  auto call = [&](int i) { b.gemm({&x, &w[static_cast<std::size_t>(i) % w.size()], &y, m, n, kk}); };
  return 1e6 * time_op(b, iters, [&](int i = -1) { call(i + 1); });
}

double context_us(k::Backend& b, int iters, int batch, int isl, int heads, int kv_heads, int hd) {
  const std::int64_t T = static_cast<std::int64_t>(batch) * isl;
  auto q = filled(b, {T, heads, hd}, 1.0f), kt = filled(b, {T, kv_heads, hd}, 1.0f),
       v = filled(b, {T, kv_heads, hd}, 1.0f);
  auto out = b.allocate({T, heads, hd}, b.compute_dtype());
  std::vector<std::int32_t> cu(batch + 1);
  for (int i = 0; i <= batch; ++i) cu[i] = i * isl;
  auto cut = ints(b, cu);
  return 1e6 * time_op(b, iters, [&](int = 0) {
           b.prefill_attention({&q, &kt, &v, &cut, &out, batch, heads, kv_heads, hd, T, isl});
         });
}

double generation_us(k::Backend& b, int iters, int batch, int kv_len, int heads, int kv_heads, int hd) {
  const int bt = 16, per_seq = (kv_len + bt - 1) / bt, blocks = batch * per_seq;
  auto q = filled(b, {batch, heads, hd}, 1.0f);
  // KV cache copies used in turn (>= 64 MiB in all): in a model, the other
  // layers' weights and KV pass through the caches between two calls.
  const double kv_bytes = 2.0 * blocks * bt * kv_heads * hd * static_cast<double>(k::dtype_bytes(b.compute_dtype()));
  const int copies = rotation_copies(kv_bytes);
  std::vector<k::Tensor> kcs, vcs;
  for (int c = 0; c < copies; ++c) {
    kcs.push_back(filled(b, {blocks, bt, kv_heads, hd}, 1.0f));
    vcs.push_back(filled(b, {blocks, bt, kv_heads, hd}, 1.0f));
  }
  auto out = b.allocate({batch, heads, hd}, b.compute_dtype());
  std::vector<std::int32_t> table(static_cast<std::size_t>(blocks)), lens(batch, kv_len);
  for (int i = 0; i < blocks; ++i) table[i] = static_cast<std::int32_t>((i * 7919LL) % blocks);  // scattered
  auto tab = ints(b, table);
  auto cl = ints(b, lens);
  return 1e6 * time_op(b, iters, [&](int i = -1) {
           const auto c = static_cast<std::size_t>(i + 1) % kcs.size();
           b.decode_attention({&q, &kcs[c], &vcs[c], &tab, &cl, &out, batch, heads, kv_heads, hd, bt, per_seq, kv_len});
         });
}

// Provenance of one profile run: "run: <command and settings>; date: <UTC>;
// source: <revision>" (the kernels that measured the rows).
// Lines equal up to the date come from runs of one grid (the later replaces
// the earlier's rows, whatever revision measured them), so merging keeps only
// the latest of them.
constexpr const char* kRunPrefix = "run: ";
std::string run_line(const std::string& what, const std::string& date) {
  return kRunPrefix + what + "; date: " + date + "; source: " + PDSIM_SOURCE_REVISION;
}
// A FLOP rate in GFLOP/s or TFLOP/s, 4 significant digits.
std::string fmt_rate(double flops) {
  std::ostringstream s;
  s << std::setprecision(4);
  if (flops >= 1e12) s << flops / 1e12 << " TFLOP/s";
  else s << flops / 1e9 << " GFLOP/s";
  return s.str();
}

std::string run_key(const std::string& line) { return line.substr(0, line.rfind("; date: ")); }

// Rows of a pdsim-measured table already in `path` (none when absent), so a
// second model's sweep adds its shapes instead of replacing the first's.
// Throws InputError when the file exists but was not written by pdsim
// profile (e.g. the vLLM tables under profiles/measured/<gpu>): never overwrite
// another source's measurements; likewise when it was measured on another
// device or configuration (its "gpu: ...; device: ..." line differs from
// `device_line`): one table, one device.
void read_existing(const std::string& path, const std::string& device_line, std::vector<std::string>& provenance,
                   std::vector<Row>& rows) {
  std::ifstream f(path);
  if (!f) return;
  std::string line;
  bool first = true, header = false;
  int line_no = 0;
  while (std::getline(f, line)) {
    ++line_no;
    if (first && line.rfind("# pdsim measured table", 0) != 0 && line.rfind("# pdsim table", 0) != 0)
      throw InputError(path, "exists and was not written by pdsim profile; choose another --name so it is not overwritten");
    first = false;
    if (line.rfind("# ", 0) == 0) {
      const std::string p = line.substr(2);
      if (p.rfind("gpu: ", 0) == 0 && p != device_line)
        throw InputError(path + ":" + std::to_string(line_no),
                         "measured on another device or configuration (" + p + "; this run: " + device_line +
                             "); choose another --name or remove the directory");
      provenance.push_back(p);
      continue;
    }
    if (!header) {
      header = true;  // column names
      continue;
    }
    Row r;
    std::stringstream ss(line);
    std::string cell;
    std::vector<double> v;
    while (std::getline(ss, cell, ',')) {
      try {
        v.push_back(std::stod(cell));
      } catch (const std::exception&) {
        throw InputError(path + ":" + std::to_string(line_no), "not a number: '" + cell + "'");
      }
    }
    if (v.size() < 2) throw InputError(path + ":" + std::to_string(line_no), "too few columns");
    r.us = v.back();
    v.pop_back();
    r.key = v;
    rows.push_back(r);
  }
}

// Writes `rows` merged with the rows already in `path` (a new row replaces an
// old one with the same identity: its first `id_columns` key columns, all of
// them when 0; provenance lines are kept, new ones appended); returns all
// rows, sorted by key.
std::vector<Row> write_merged_csv(const std::string& path, const std::string& device_line,
                                  const std::vector<std::string>& provenance, const std::string& header,
                                  const std::vector<Row>& rows, std::size_t id_columns = 0) {
  std::vector<std::string> prov;
  std::vector<Row> old;
  read_existing(path, device_line, prov, old);
  for (const auto& p : provenance) {
    // An earlier run of the same command re-measured every row this one did: its line goes.
    if (p.rfind(kRunPrefix, 0) == 0)
      prov.erase(std::remove_if(prov.begin(), prov.end(),
                                [&](const std::string& q) { return run_key(q) == run_key(p); }),
                 prov.end());
    if (std::find(prov.begin(), prov.end(), p) == prov.end()) prov.push_back(p);
  }
  auto id = [&](const Row& r) {
    return id_columns == 0 || id_columns >= r.key.size()
               ? r.key
               : std::vector<double>(r.key.begin(), r.key.begin() + static_cast<std::ptrdiff_t>(id_columns));
  };
  std::map<std::vector<double>, Row> merged;
  for (const auto& r : old) merged[id(r)] = r;
  for (const auto& r : rows) merged[id(r)] = r;
  std::vector<Row> all;  // in key order: an identity is a prefix of its key
  for (auto [key, row] : merged) {
    // As written (6 significant digits), so factors fitted on these rows are
    // the ones --refit finds on the file.
    std::ostringstream written;
    written << std::setprecision(6) << row.us;
    row.us = std::stod(written.str());
    for (double& x : row.key) x = static_cast<double>(static_cast<long long>(x));
    all.push_back(row);
  }
  // Atomically: the old rows live only in this file until the rename.
  write_file_atomically(path, [&](std::ostream& f) {
    for (const auto& p : prov) f << "# " << p << "\n";
    f << header << "\n";
    f << std::setprecision(6);
    for (const auto& r : all) {
      for (double x : r.key) f << static_cast<long long>(x) << ",";
      f << r.us << "\n";
    }
  });
  return all;
}

struct Fit {
  RooflineFactors f;
  double median = 0, p90 = 0;
  int rows = 0;
};
// Fitted factors (sim/cost/calibration.h) and |rel err| on the same rows.
Fit fit(const std::vector<CalibrationPoint>& points, double peak, double bw, const FitOptions& options) {
  Fit out;
  out.f = fit_roofline_factors(points, peak, bw, options);
  std::vector<double> rel;
  for (const auto& p : points) rel.push_back(std::fabs(calibrated_seconds(out.f, p.op, peak, bw) / p.seconds - 1));
  std::sort(rel.begin(), rel.end());
  out.median = rel[rel.size() / 2];
  out.p90 = rel[static_cast<std::size_t>(0.9 * (rel.size() - 1))];
  out.rows = static_cast<int>(points.size());
  return out;
}

double host_memory_gib() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  double kb = 0;
  while (f >> key >> kb) {
    if (key == "MemTotal:") return kb / 1048576.0;
    f.ignore(256, '\n');
  }
  return 8;
}

// The tables a device profile's roofline factors are fitted on (all their rows).
struct FitTables {
  std::vector<Row> gemm, ctx, gen;
  std::map<std::string, std::vector<Row>> elem;  // by op name: tokens, flops, bytes, kernels -> us
  int allreduce_rows = 0;
};
struct Calibration {
  Fit gemm, gemv, prefill, decode;
  std::map<std::string, Fit> elem;
  nlohmann::ordered_json json;  // the device profile's "calibrated" object
};

// Fitted roofline factors per class (fit and error on all rows of its table),
// against the device's measured ceilings. `source`: the tables' directory.
Calibration calibrate(const FitTables& t, double peak_flops, double bw, double overhead_us, const std::string& source) {
  // Byte counts of the op list are bf16; the CPU moves float32, which the fitted memory factor absorbs.
  auto points = [](const std::vector<Row>& rows, auto op_of) {
    std::vector<CalibrationPoint> p;
    for (const auto& r : rows) p.push_back({op_of(r.key), r.us * 1e-6});
    return p;
  };
  // GEMMs of one row are matrix-vector products, another kernel: their own
  // factors ("gemv", fitted on the m = 1 rows). The GEMM factors are still
  // fitted on every row: without the m = 1 rows to pin its memory factor the
  // fit let it drop and priced m = 2 up to 31% slow on a CPU.
  std::vector<Row> gemv_rows;
  for (const auto& r : t.gemm)
    if (r.key[0] == 1) gemv_rows.push_back(r);
  auto gemm_op = [](const auto& x) { return gemm_row_op(x[0], x[1], x[2], 2); };
  Calibration c;
  c.gemm = fit(points(t.gemm, gemm_op), peak_flops, bw, FitOptions{false, true, true});
  c.gemv = fit(points(gemv_rows, gemm_op), peak_flops, bw, {});
  c.prefill = fit(points(t.ctx,
                         [](const auto& x) {
                           return attention_row_op(false, x[0], x[1], int(x[2]), int(x[3]), int(x[4]));
                         }),
                  peak_flops, bw, FitOptions{false, true, false});
  c.decode = fit(points(t.gen,
                        [](const auto& x) {
                          return attention_row_op(true, x[0], x[1], int(x[2]), int(x[3]), int(x[4]));
                        }),
                 peak_flops, bw, {});
  // Elementwise: per op, on the layer executor's timings; the math runs on
  // the fp32 pipes: the profile's fp32 peak (= the measured one here).
  for (const auto& [op_name, rows] : t.elem) {
    std::vector<CalibrationPoint> pts;
    for (const Row& r : rows) {
      Op op{op_name.c_str(), OpClass::kElementwise};
      op.flops = r.key[1];
      op.bytes = r.key[2];
      op.kernels = static_cast<int>(r.key[3]);
      pts.push_back({op, r.us * 1e-6});
    }
    c.elem[op_name] = fit(pts, peak_flops, bw, {});
  }
  // half_key: the JSON name of the class's Hockney length (sim/hw/gpu_spec.h).
  auto fac = [](const Fit& f, bool link, const char* half_key = nullptr) {
    nlohmann::ordered_json j;
    if (link) {
      j["link"] = 1.0;
    } else {
      j["compute"] = std::round(f.f.compute * 1e4) / 1e4;
      j["memory"] = std::round(f.f.memory * 1e4) / 1e4;
    }
    if (half_key && f.f.n_half > 0) j[half_key] = f.f.n_half;
    if (f.f.min_compute > 0) j["min_compute"] = f.f.min_compute;
    j["overhead_us"] = f.f.overhead_us;
    j["rows_fit"] = std::max(1, f.rows);
    j["rows_test"] = std::max(1, f.rows);
    j["median_abs_rel_err"] = std::round(f.median * 1e4) / 1e4;
    j["p90_abs_rel_err"] = std::round(f.p90 * 1e4) / 1e4;
    return j;
  };
  nlohmann::ordered_json& cal = c.json;
  cal["method"] = "pdsim profile (sim/cost/calibration.h): grid search minimising mean |ln(predicted/measured)| of "
                  "max(FLOPs / (peak x efficiency), bytes/(bandwidth x memory)) + overhead_us, efficiency = "
                  "max(compute x m/(m + m_half_rows), min_compute) for a GEMM of m rows, compute x L/(L + "
                  "half_keys_per_query) for prefill attention with L keys per query row, else compute; over every row of the class's table (gemv: the m = 1 rows alone, which price "
                  "GEMMs of one row; elementwise: per op, the layer executor's timings at "
                  "1..max tokens); errors on the same rows";
  cal["source"] = source;
  cal["gemm"] = fac(c.gemm, false, kGemmHalfKey);
  cal["gemv"] = fac(c.gemv, false);
  cal["attention_prefill"] = fac(c.prefill, false, kPrefillHalfKey);
  cal["attention_decode"] = fac(c.decode, false);
  // The all-reduce proxy: the measured copy bandwidth and smallest-kernel time, nothing fitted.
  Fit far;
  far.f = {1, 1, overhead_us};
  far.rows = t.allreduce_rows;
  cal["allreduce"] = fac(far, true);
  for (const auto& [op_name, f] : c.elem) cal["elementwise"][op_name] = fac(f, false);
  return c;
}

void print_fit_errors(const Calibration& c) {
  std::cout << std::setprecision(4) << "fitted roofline (median / p90 |rel err|): gemm " << c.gemm.median << " / "
            << c.gemm.p90 << ", gemv " << c.gemv.median << " / " << c.gemv.p90 << ", prefill attention "
            << c.prefill.median << " / " << c.prefill.p90 << ", decode attention " << c.decode.median << " / "
            << c.decode.p90 << "\n";
  for (const auto& [op_name, f] : c.elem) std::cout << "  elementwise " << op_name << " " << f.median << " / " << f.p90 << "\n";
}

int profile(const ProfileOptions& o, const GlobalOptions& g, const std::string& command_line) {
  ModelCatalog catalog;
  catalog.load_file(g.data_dir + "/profiles/models.json");
  const ModelSpec& model = catalog.get(o.model, "--model");
  const k::LayerDims d = k::layer_dims(model, o.tp, "--tp");
  std::unique_ptr<k::Backend> b;
  std::string why;
  if (o.backend == "cpu") b = k::make_cpu_backend(o.threads);
  else if (!(b = k::make_cuda_backend(&why))) throw InputError("--backend cuda", why);
  const std::string name = profile_name(o);
  const std::string dir = o.out + "/measured/" + name;
  const std::string device_line = "gpu: " + name + "; device: " + b->device();
  // Refuse before measuring anything if DIR holds tables pdsim did not write, or another device's.
  for (const char* f : {"gemm_bf16", "context_attention_bf16", "generation_attention_bf16", "allreduce"}) {
    std::vector<std::string> prov;
    std::vector<Row> rows;
    read_existing(dir + "/" + f + ".csv", device_line, prov, rows);
  }
  create_output_dir(dir);
  if (o.only.empty()) create_output_dir(o.out + "/gpus");
  const auto t_start = std::chrono::steady_clock::now();
  const std::string date = utc_now();
  const std::string dtype = b->compute_dtype() == k::DType::kF32 ? "float32" : "bfloat16";
  auto prov = [&](const std::string& what) {
    return std::vector<std::string>{
        "pdsim measured table: " + what,
        device_line,
        "backend: " + b->name() + " (pdsim kernels, " + dtype + " storage; stored under the bf16 file name the profiled model reads)",
        run_line(command_line + "; model shapes: " + model.name + " tp=" + std::to_string(o.tp) + "; minimum of " +
                 std::to_string(o.iters) + " timed calls after one warm-up, fastest of " +
                     std::to_string(o.passes) + (o.passes == 1 ? " pass" : " passes") + " over the sweep",
                 date)};
  };
  std::cout << "profiling " << b->name() << " backend (" << b->device() << ") for " << model.name << " tp=" << o.tp
            << "\n";

  // ---- GEMM: every (n, k) of the model's layer, m = tokens (lm_head: rows that emit a token).
  const std::int64_t h = d.hidden, qd = static_cast<std::int64_t>(d.heads) * d.head_dim,
                     kvd = static_cast<std::int64_t>(d.kv_heads) * d.head_dim;
  struct Shape { std::int64_t n, k, max_m; };
  const std::int64_t max_m = o.full ? 8192 : 1024;
  std::vector<Shape> shapes = {{qd + 2 * kvd, h, max_m}, {h, qd, max_m}, {2LL * d.ffn, h, max_m}, {h, d.ffn, max_m},
                               {d.vocab, h, o.full ? 512 : 64}};
  const std::vector<int> ctx_batches = o.full ? std::vector<int>{1, 2, 4, 8, 16} : std::vector<int>{1, 2, 4, 8};
  const int max_isl = o.full ? 4096 : 1024;
  const std::vector<int> gen_batches =
      o.full ? std::vector<int>{1, 2, 4, 8, 16, 32, 64, 128} : std::vector<int>{1, 2, 4, 8, 16, 32};
  const int max_kv = o.full ? 8192 : 2048;

  // Progress on stderr when it is a terminal: points measured of all points.
  auto doublings = [](std::int64_t lo, std::int64_t hi) {
    int n = 0;
    for (std::int64_t x = lo; x <= hi; x *= 2) ++n;
    return n;
  };
  const bool decode_only = o.only == "decode-attention";
  int total = static_cast<int>(gen_batches.size()) * doublings(16, max_kv);
  if (!decode_only) {
    total += doublings(1, max_m) + static_cast<int>(ctx_batches.size()) * doublings(16, max_isl);  // elementwise, prefill
    for (const auto& s : shapes) total += doublings(1, s.max_m);
  }
  total *= o.passes;
  int done = 0;
  const bool show_progress = isatty(STDERR_FILENO);
  auto tick = [&](const char* phase) {
    ++done;
    if (show_progress) std::fprintf(stderr, "\rprofiling %-11s %4d/%d points", phase, done, total);
  };

  // ---- GEMMs, then attention on the model's per-GPU head layout, then the
  // elementwise ops (RMSNorm, RoPE + KV append, SiLU-gate) as the layer
  // executor runs them, for prefill batches of 1..max_m tokens (the profiled
  // model's elementwise tables, and what the "elementwise" roofline factors
  // are fitted on). The sweep runs `passes` times and every point keeps
  // its fastest pass: a slow spell of the host (a VM's neighbours) in one
  // pass then no longer biases a block of consecutive rows (on this project's
  // VM one made decode attention at batch 2..8 read 20-25% slow).
  std::vector<Row> gemm_rows, ctx_rows, gen_rows;
  std::map<std::string, std::vector<Row>> elem_rows;  // by op name: tokens, flops, bytes, kernels -> us
  // Every pass visits the points in one order: the next-th row of a table is the same point.
  auto record = [](std::vector<Row>& rows, std::size_t& next, std::vector<double> key, double us) {
    if (next == rows.size()) {
      rows.push_back({std::move(key), us});
    } else {
      PDSIM_CHECK(rows[next].key == key, "profile passes visit the points in one order");
      rows[next].us = std::min(rows[next].us, us);
    }
    ++next;
  };
  std::optional<k::LayerExecutor> exec;
  if (!decode_only) {
    k::ExecutorOptions eo;
    eo.iters = o.iters;
    exec.emplace(*b, d, eo);
  }
  for (int pass = 0; pass < o.passes; ++pass) {
    std::size_t gi = 0, ci = 0, di = 0;
    std::map<std::string, std::size_t> ei;
    if (!decode_only) {
      for (const auto& s : shapes)
        for (std::int64_t m = 1; m <= s.max_m; m *= 2) {
          record(gemm_rows, gi, {double(m), double(s.n), double(s.k)}, gemm_us(*b, o.iters, m, s.n, s.k));
          tick("gemm");
        }
      for (int bsz : ctx_batches)
        for (int isl = 16; isl <= max_isl; isl *= 2) {
          record(ctx_rows, ci, {double(bsz), double(isl), double(d.heads), double(d.kv_heads), double(d.head_dim)},
                 context_us(*b, o.iters, bsz, isl, d.heads, d.kv_heads, d.head_dim));
          tick("prefill-att");
        }
    }
    for (int bsz : gen_batches)
      for (int kv = 16; kv <= max_kv; kv *= 2) {
        record(gen_rows, di, {double(bsz), double(kv), double(d.heads), double(d.kv_heads), double(d.head_dim)},
               generation_us(*b, o.iters, bsz, kv, d.heads, d.kv_heads, d.head_dim));
        tick("decode-att");
      }
    if (!decode_only)
      for (std::int64_t t = 1; t <= max_m; t *= 2) {
        k::LayerBatch lb;
        lb.prefill_lens = {static_cast<int>(t)};
        const k::LayerTiming lt = exec->run(lb);
        tick("elementwise");
        BatchStats bs;
        bs.add(SeqShape{t, 0});
        std::vector<Op> ops;
        build_ops(model, Parallelism{o.tp, 1}, bs, ops);
        for (const Op& op : ops)
          if (op.op_class == OpClass::kElementwise && lt.op_s(op.name) > 0)
            record(elem_rows[op.name], ei[op.name], {double(t), op.flops, op.bytes, double(op.kernels)},
                   1e6 * lt.op_s(op.name));
      }
  }

  if (show_progress) std::fprintf(stderr, "\r%60s\r", "");

  gen_rows = write_merged_csv(
      dir + "/generation_attention_bf16.csv", device_line,
      prov("decode (generation) attention, one layer, one new token per sequence, paged KV (16-token blocks)"),
      "batch,kv_len,heads,kv_heads,head_dim,latency_us", gen_rows);
  if (decode_only) {
    std::cout << "wrote " << dir << "/generation_attention_bf16.csv (--only decode-attention: no other table, no "
              << "device profile) in "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count() << " s\n";
    return 0;
  }
  // Merge into the tables already there (another model's shapes), then fit on all rows.
  // The fastest GEMM of this run's sweep (before the merge brings in other runs' rows).
  double fastest_row_flops = 0;
  for (const Row& r : gemm_rows)
    fastest_row_flops = std::max(fastest_row_flops, 2.0 * r.key[0] * r.key[1] * r.key[2] / (r.us * 1e-6));
  gemm_rows = write_merged_csv(dir + "/gemm_bf16.csv", device_line, prov("GEMM (m x k) @ (k x n)"), "m,n,k,latency_us", gemm_rows);
  ctx_rows = write_merged_csv(dir + "/context_attention_bf16.csv", device_line,
                              prov("prefill (context) attention, one layer, batch of equal prompts, no cached prefix"),
                              "batch,isl,heads,kv_heads,head_dim,latency_us", ctx_rows);

  // The elementwise rows, one file per op, merged with the rows of the other
  // models profiled into this directory, and fitted on all of them: one GPU
  // profile prices every model, so its factors must not be the last model's
  // alone (a 70B run's alone priced an 8B decode step's RoPE + KV append 75%
  // slow). The profiled model looks these rows up (sim/cost/profiled.h).
  for (auto& [op_name, rows] : elem_rows) {
    rows = write_merged_csv(
        dir + "/elementwise_" + op_name + ".csv", device_line,
        prov("elementwise op " + op_name + " as the layer executor times it (one layer, a prefill batch of `tokens` "
             "tokens); flops, bytes and kernels are the op list's (sim/model/ops.cc); the profiled model prices these "
             "ops from these rows (per shape: bytes per token), and the profile's elementwise roofline factors are "
             "fitted on them"),
        "tokens,flops,bytes,kernels,latency_us", rows,
        // A row is its shape (tokens, FLOPs); bytes and kernels are the op
        // list's and go with it, so a changed op list (2026-12-03: the
        // residual adds fused into the norms, 4 kernels -> 2) leaves no stale
        // row. (Two models whose op has equal FLOPs at equal tokens but other
        // bytes keep the last one profiled.)
        /*id_columns=*/2);
  }

  // ---- ceilings: large GEMM, copy bandwidth, smallest kernel.
  // A GPU needs a large product to reach its peak (2048^3 is ~20 us on an H100).
  const std::int64_t big = b->name() == "cuda" ? 8192 : (o.full ? 4096 : 2048);
  // Best of at least 10 timed calls, as the kernel benchmark's peak (on one
  // H100, 2026-11-25, the best of 3 read 697 TFLOP/s, the benchmark's 793).
  double big_s = 1e300;
  for (int pass = 0; pass < o.passes; ++pass)
    big_s = std::min(big_s, gemm_us(*b, std::max(o.iters, 10), big, big, big) * 1e-6);
  const double big_flops = 2.0 * big * big * big / big_s;
  // The ceiling is the fastest GEMM this run timed: a host that slowed down
  // while the big GEMM ran (a VM's neighbours) once gave a peak 7% below the
  // sweep's large rows, and a compute factor, a fraction of peak, cannot
  // exceed 1 to follow them.
  const double peak_flops = std::max(big_flops, fastest_row_flops);
  // The backend's own device-to-device copy (cudaMemcpyAsync / memcpy), not a
  // kernel written here, so the ceiling does not inherit a slow kernel of
  // ours. (Until 2026-11-25 this timed kv_append, whose scalar 2-byte accesses
  // reach ~1 TB/s on an H100: its roofline then priced decode GEMMs 2.4x slow.)
  // 1 GiB on a GPU (20x an H100's L2), 256 MiB on a CPU (several times any L3).
  const double copy_src_bytes = (b->name() == "cuda" ? 1024.0 : 256.0) * 1024 * 1024;
  double bw = 0;  // read + written
  for (int pass = 0; pass < o.passes; ++pass)
    bw = std::max(bw, k::measure_copy_bytes_per_s(*b, copy_src_bytes, std::max(o.iters, 10)));
  auto tiny_x = filled(*b, {1, 64}), tiny_w = filled(*b, {64}), tiny_y = b->allocate({1, 64}, b->compute_dtype());
  const double overhead_us =
      1e6 * time_op(*b, std::max(o.iters, 21), [&](int = 0) { b->rmsnorm({&tiny_x, &tiny_w, &tiny_y, 1, 64, 1e-5f}); });

  // ---- all-reduce proxy: one device has no link; a 2-member ring moves `bytes` each way,
  // priced as a copy of `bytes` at the measured bandwidth plus the smallest-kernel time.
  std::vector<Row> ar_rows;
  for (double bytes = 1024; bytes <= 64.0 * 1024 * 1024; bytes *= 4)
    ar_rows.push_back({{2, bytes}, overhead_us + 1e6 * bytes / bw});
  write_merged_csv(dir + "/allreduce.csv", device_line,
            {"pdsim table: all-reduce PROXY (not measured: a single device has no peer link): 2 GPUs, bytes / "
             "measured copy bandwidth + smallest-kernel time",
             device_line, run_line(command_line, date)},
            "gpus,bytes,latency_us", ar_rows);

  const double tflops = peak_flops / 1e12;
  const double mem_gib = b->name() == "cpu" ? host_memory_gib() : [] {
    const auto devs = k::cuda_devices();
    return devs.empty() ? 80.0 : devs[0].memory_gib;
  }();
  const bool f32 = b->compute_dtype() == k::DType::kF32;
  nlohmann::ordered_json p;
  p["name"] = name;
  p["device"] = b->device();
  p["dense_tflops"] = {{"fp32", tflops}, {"bf16", tflops}, {"fp16", tflops}};
  p["hbm_gbytes_per_s"] = bw / 1e9;
  p["memory_gib"] = std::round(mem_gib * 100) / 100;
  p["intra_node_link"] = {{"kind", "memcpy-proxy"}, {"gbytes_per_s_per_direction", bw / 1e9}};
  p["nic_gbits_per_s"] = 10;
  p["price_usd_per_gpu_hour"] = 0;
  p["efficiency"] = {{"gemm", 1.0}, {"attention", 1.0}, {"memory", f32 ? 0.5 : 1.0}, {"link", 1.0}};
  p["kernel_overhead_us"] = std::round(overhead_us * 100) / 100;
  FitTables tables{gemm_rows, ctx_rows, gen_rows, elem_rows, static_cast<int>(ar_rows.size())};
  // The ceilings as the profile stores them (TFLOP/s, GB/s), so --refit, which reads them there, fits the same.
  const Calibration cal = calibrate(tables, tflops * 1e12, (bw / 1e9) * 1e9, overhead_us, dir);
  p["calibrated"] = cal.json;
  p["sources"] = {
      {"all", "measured by `" + command_line + "` on " + date + " with the " + b->name() + " backend (" + b->device() +
                  "), pdsim source " + PDSIM_SOURCE_REVISION},
      {"dense_tflops", "measured: the fastest of a " + std::to_string(big) + "^3 GEMM (" + fmt_rate(big_flops) +
                           ") and this run's GEMM table rows (" + fmt_rate(fastest_row_flops) + ") in " + dtype +
                           " (all dtypes: the backend computes in " + dtype + ")"},
      {"hbm_gbytes_per_s", std::string("measured: device copy bandwidth (") +
                               (b->name() == "cuda" ? "cudaMemcpyAsync device to device of 1 GiB" : "memcpy of 256 MiB") +
                               ", bytes read + written / time, best of 10 per pass, fastest of " + std::to_string(o.passes) +
                               (o.passes == 1 ? " pass)" : " passes)")},
      {"memory_gib", b->name() == "cpu" ? "host MemTotal" : "CUDA device total memory"},
      {"intra_node_link", "PROXY: the measured copy bandwidth (one device has no peer link)"},
      {"nic_gbits_per_s", "ASSUMPTION: 10 Gb/s"},
      {"price_usd_per_gpu_hour", "ASSUMPTION: 0 (a machine already owned)"},
      {"efficiency", f32 ? "measured ceilings are attained rates (1.0); memory 0.5: op byte counts assume bf16, the "
                           "CPU backend moves float32"
                         : "measured ceilings are attained rates (1.0)"},
      {"kernel_overhead_us", "measured: minimum time of the smallest kernel (RMSNorm of 1 x 64)"}};
  const std::string json_path = o.out + "/gpus/" + name + ".json";
  write_file_atomically(json_path, p.dump(2) + "\n");

  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  std::cout << std::setprecision(4) << "large GEMM " << tflops * 1e3 << " GFLOP/s; copy " << bw / 1e9
            << " GB/s; smallest kernel " << overhead_us << " us\n";
  print_fit_errors(cal);
  std::cout << "wrote " << dir << "/{gemm_bf16,context_attention_bf16,generation_attention_bf16,allreduce,elementwise_*}.csv and "
            << json_path << " in " << wall << " s\n";
  return 0;
}

// --refit: the device profile's "calibrated" factors fitted again on the
// tables already in DIR/measured/<name>, against the ceilings already in
// DIR/gpus/<name>.json; nothing is measured and no table changes. For a fit
// that has improved since the tables were measured (on a GPU that is no
// longer at hand), or tables that have gained rows.
int refit(const ProfileOptions& o, const std::string& command_line) {
  const std::string name = profile_name(o);
  const std::string dir = o.out + "/measured/" + name;
  const std::string json_path = o.out + "/gpus/" + name + ".json";
  std::ifstream in(json_path, std::ios::binary);
  if (!in) throw InputError(json_path, "cannot open file (--refit needs the device profile pdsim profile wrote)");
  std::stringstream text;
  text << in.rdbuf();
  parse_json_text(text.str(), json_path);  // malformed JSON: the file, line and column
  auto p = nlohmann::ordered_json::parse(text.str());  // keeps the file's key order
  using Ptr = nlohmann::ordered_json::json_pointer;
  // A JSON pointer ("/dense_tflops/bf16") read as a positive number; the error names it as $.dense_tflops.bf16.
  auto number = [&](const std::string& pointer) {
    const Ptr ptr(pointer);
    if (!p.contains(ptr) || !p.at(ptr).is_number() || !(p.at(ptr).get<double>() > 0)) {
      std::string where = pointer;
      std::replace(where.begin(), where.end(), '/', '.');
      throw InputError(json_path + ": $" + where,
                       "missing or not a positive number (--refit reads the measured ceilings from it)");
    }
    return p.at(ptr).get<double>();
  };
  const double peak_flops = number("/dense_tflops/bf16") * 1e12;
  const double bw = number("/hbm_gbytes_per_s") * 1e9;
  // The all-reduce proxy's time is the smallest kernel's, stored unrounded there.
  const double overhead_us = p.contains(Ptr("/calibrated/allreduce/overhead_us"))
                                 ? number("/calibrated/allreduce/overhead_us")
                                 : number("/kernel_overhead_us");
  if (!p.contains("device") || !p["device"].is_string())
    throw InputError(json_path + ": $.device", "missing or not a string");
  const std::string device_line = "gpu: " + name + "; device: " + p["device"].get<std::string>();
  auto table = [&](const std::string& file, bool required) {
    const std::string path = dir + "/" + file;
    std::vector<std::string> prov;
    std::vector<Row> rows;
    if (!std::filesystem::exists(path)) {
      if (required) throw InputError(path, "missing (--refit fits on the tables pdsim profile wrote)");
      return rows;
    }
    read_existing(path, device_line, prov, rows);
    if (required && rows.empty()) throw InputError(path, "has no rows");
    return rows;
  };
  FitTables t;
  t.gemm = table("gemm_bf16.csv", true);
  t.ctx = table("context_attention_bf16.csv", true);
  t.gen = table("generation_attention_bf16.csv", true);
  t.allreduce_rows = static_cast<int>(table("allreduce.csv", false).size());
  for (const auto& [op, f] : elementwise_table_files(dir)) {
    auto rows = table(f, true);
    for (const Row& r : rows)
      if (r.key.size() != 4) throw InputError(dir + "/" + f, "expected the columns tokens,flops,bytes,kernels,latency_us");
    t.elem[op] = std::move(rows);
  }
  const Calibration cal = calibrate(t, peak_flops, bw, overhead_us, dir);
  p["calibrated"] = cal.json;
  p["sources"]["calibrated"] = "refitted by `" + command_line + "` on " + utc_now() + ", pdsim source " +
                               PDSIM_SOURCE_REVISION + ", on the tables in " + dir;
  write_file_atomically(json_path, p.dump(2) + "\n");
  print_fit_errors(cal);
  std::cout << "wrote " << json_path << " (calibrated factors refitted on " << dir << "; nothing measured)\n";
  return 0;
}

}  // namespace

Command add_profile_command(CLI::App& app, const GlobalOptions& global) {
  auto o = std::make_shared<ProfileOptions>();
  app.add_option("--backend", o->backend, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--model", o->model, "catalog model whose shapes to sweep (required unless --refit)");
  app.add_option("--tp", o->tp, "tensor parallel degree (per-GPU shapes)")->check(CLI::PositiveNumber);
  app.add_option("--out", o->out, "output directory (gets measured/<name>/ and gpus/<name>.json)")->required();
  app.add_option("--name", o->name, "device profile name (default host-cpu or cuda-device)");
  app.add_option("--iters", o->iters, "timed calls per point (minimum)")->check(CLI::PositiveNumber);
  app.add_option("--passes", o->passes, "sweeps over every point; each keeps its fastest (default 2)")
      ->check(CLI::PositiveNumber);
  app.add_option("--threads", o->threads, "CPU backend threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  app.add_flag("--full", o->full, "a larger sweep (longer prompts, contexts, batches)");
  app.add_option("--only", o->only, "decode-attention: sweep and write the decode attention table alone")
      ->check(CLI::IsMember({"decode-attention"}));
  app.add_flag("--refit", o->refit,
               "measure nothing: fit the calibrated factors of --out/gpus/<name>.json again on the tables in "
               "--out/measured/<name>");
  return [o, &global, &app] {
    if (o->refit) {
      if (!o->model.empty() || !o->only.empty() || o->full)
        throw InputError("--refit", "measures nothing: drop --model, --only and --full");
      return refit(*o, "pdsim profile --refit --out " + o->out + (o->name.empty() ? "" : " --name " + o->name));
    }
    if (o->model.empty()) throw InputError("--model", "required (the catalog model whose shapes to sweep)");
    std::string cmd = "pdsim profile --backend " + o->backend + " --model " + o->model + " --tp " +
                      std::to_string(o->tp) + " --out " + o->out;
    if (!o->name.empty()) cmd += " --name " + o->name;
    if (o->threads) cmd += " --threads " + std::to_string(o->threads);
    if (o->iters != 3) cmd += " --iters " + std::to_string(o->iters);
    if (o->passes != 2) cmd += " --passes " + std::to_string(o->passes);
    if (o->full) cmd += " --full";
    if (!o->only.empty()) cmd += " --only " + o->only;
    (void)app;
    return profile(*o, global, cmd);
  };
}

}  // namespace pdsim::cli
