// pdsim compare-tables: one set of measured kernel tables (ours: what `pdsim
// profile` measured on a device) beside another (theirs: e.g. the vLLM tables
// imported from AIConfigurator for the same GPU), shape by shape.
//
// For every row of ours (GEMM m,n,k; context attention batch,isl,heads,
// kv_heads,head_dim; generation attention batch,kv_len,heads,kv_heads,
// head_dim) the same shape is priced in both directories by the profiled cost
// model's own lookup (ProfiledCostModel::gemm / ::attention: one lookup in
// one place). Ours is always a table point of its own directory ("measured");
// theirs says where its value came from: "measured" (a table point),
// "interpolated" or "roofline-fallback" (outside their table). Both values are
// the tables as the profiled model reads them: made non-decreasing along every
// axis when loaded, so a row that monotone pass moved (pooled with its
// neighbours, or floored at a smaller batch) shows its moved value (the
// report counts such rows of ours).
//
// Writes PREFIX.csv (one row per shape: class, m, n, k, batch, length, heads,
// kv_heads, head_dim, ours_us, theirs_us, ratio = ours / theirs,
// theirs_source; fields a class lacks are empty) and PREFIX.md (per class:
// rows, median, p10 and p90 of the ratio over all rows and over the rows
// theirs measured exactly; then every row). The all-reduce table is not
// compared: one device has no peer link, so `pdsim profile` writes a proxy.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include "sim/core/error.h"
#include "sim/core/output_file.h"
#include "sim/cost/profiled.h"
#include "sim/hw/gpu_spec.h"
#include "sim/metrics/metrics.h"
#include "tools/commands.h"

namespace pdsim::cli {

namespace fs = std::filesystem;

namespace {

struct CompareOptions {
  std::string ours, theirs, out, gpu;
};

struct Row {
  std::string cls;  // gemm_bf16, gemm_fp8, context_attention, generation_attention
  // GEMM: m, n, k. Attention: batch, length (isl or kv_len), heads, kv_heads, head_dim.
  std::vector<std::int64_t> shape;
  double ours_us = 0, theirs_us = 0, ratio = 0;
  std::string theirs_source;
  bool adjusted = false;  // ours was moved by the loader's monotone pass
};

// The loader's price of a table point differs from the stored latency (beyond rounding).
bool moved(double price_s, double stored_us) { return std::fabs(price_s / (stored_us * 1e-6) - 1) > 1e-12; }

// q in [0, 1]; numpy's linear interpolation (sim/metrics/metrics.h). REQUIRES: v non-empty.
double quantile(const std::vector<double>& v, double q) { return percentile(v, 100 * q); }

std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

// The directory as given, without trailing slashes (so its file name is the table set's name).
std::string clean_dir(std::string d) {
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return d;
}

// GPU profile whose roofline prices shapes outside a table (ProfiledCostModel
// needs one): --gpu NAME from the data directory; else the profile named like
// the table directory, next to it (DIR/../../gpus/NAME.json, the layout
// `pdsim profile --out` writes) or in the data directory.
GpuSpec resolve_gpu(const std::string& dir, const std::string& gpu_option, const GlobalOptions& g, bool required) {
  if (!gpu_option.empty()) return GpuCatalog(g.data_dir + "/profiles/gpus").get(gpu_option, "--gpu");
  const fs::path d(dir);
  const std::string name = d.filename().string();
  for (const fs::path& p : {d.parent_path().parent_path() / "gpus" / (name + ".json"),
                            fs::path(g.data_dir) / "profiles" / "gpus" / (name + ".json")})
    if (fs::exists(p)) return load_gpu_file(p.string(), name);
  if (!required) return {};
  throw InputError("--theirs " + dir, "no GPU profile named \"" + name +
                                          "\" (its roofline prices shapes outside the tables): pass --gpu NAME");
}

// '#' provenance lines of one table file ("device:", "source:", "kernels:", "backend:", "date:" ones).
std::vector<std::string> provenance(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line) && !line.empty() && line[0] == '#') {
    for (const char* key : {"gpu:", "source:", "kernels:", "backend:", "date:"})
      if (line.rfind(std::string("# ") + key, 0) == 0) out.push_back(line.substr(2));
  }
  return out;
}

int compare_tables(const CompareOptions& o, const GlobalOptions& g) {
  const std::string ours_dir = clean_dir(o.ours), theirs_dir = clean_dir(o.theirs);
  const std::string ours_name = fs::path(ours_dir).filename().string(),
                    theirs_name = fs::path(theirs_dir).filename().string();
  auto ours_t = std::make_shared<const MeasuredTables>(read_measured_tables(ours_dir, ours_name, "--ours " + ours_dir));
  auto theirs_t =
      std::make_shared<const MeasuredTables>(read_measured_tables(theirs_dir, theirs_name, "--theirs " + theirs_dir));
  const GpuSpec theirs_gpu = resolve_gpu(theirs_dir, o.gpu, g, true);
  GpuSpec ours_gpu = resolve_gpu(ours_dir, "", g, false);
  if (ours_gpu.name.empty()) ours_gpu = theirs_gpu;  // ours is only priced at its own table points

  std::vector<Row> rows;
  for (const int wb : {2, 1}) {
    const char* file = wb == 2 ? "gemm_bf16.csv" : "gemm_fp8.csv";
    if (wb == 1 && (ours_t->gemm_fp8.lines.empty() || theirs_t->gemm_fp8.lines.empty())) continue;
    const ProfiledCostModel ours(ours_t, ours_gpu, wb, 2, "--ours " + ours_dir);
    const ProfiledCostModel theirs(theirs_t, theirs_gpu, wb, 2, "--theirs " + theirs_dir);
    const CsvRows csv = read_measured_csv(ours_dir + "/" + file, {"m", "n", "k", "latency_us"});
    for (const auto& r : csv.rows) {
      const auto m = static_cast<std::int64_t>(r[0]), n = static_cast<std::int64_t>(r[1]),
                 k = static_cast<std::int64_t>(r[2]);
      const auto a = ours.gemm(m, n, k), b = theirs.gemm(m, n, k);
      PDSIM_CHECK(std::string(a.source) == "measured", "a table row is not a table point of its own table");
      rows.push_back({wb == 2 ? "gemm_bf16" : "gemm_fp8", {m, n, k}, a.time_s * 1e6, b.time_s * 1e6,
                      a.time_s / b.time_s, b.source, moved(a.time_s, r[3])});
    }
  }
  {
    const ProfiledCostModel ours(ours_t, ours_gpu, 2, 2, "--ours " + ours_dir);
    const ProfiledCostModel theirs(theirs_t, theirs_gpu, 2, 2, "--theirs " + theirs_dir);
    for (const bool decode : {false, true}) {
      const std::string file = decode ? "generation_attention_bf16.csv" : "context_attention_bf16.csv";
      const CsvRows csv = read_measured_csv(ours_dir + "/" + file,
                                            {"batch", decode ? "kv_len" : "isl", "heads", "kv_heads", "head_dim",
                                             "latency_us"});
      for (const auto& r : csv.rows) {
        const int heads = static_cast<int>(r[2]), kv_heads = static_cast<int>(r[3]), hd = static_cast<int>(r[4]);
        const auto a = ours.attention(decode, r[0], r[1], heads, kv_heads, hd);
        const auto b = theirs.attention(decode, r[0], r[1], heads, kv_heads, hd);
        PDSIM_CHECK(std::string(a.source) == "measured", "a table row is not a table point of its own table");
        rows.push_back({decode ? "generation_attention" : "context_attention",
                        {static_cast<std::int64_t>(r[0]), static_cast<std::int64_t>(r[1]), heads, kv_heads, hd},
                        a.time_s * 1e6, b.time_s * 1e6, a.time_s / b.time_s, b.source, moved(a.time_s, r[5])});
      }
    }
  }

  const std::string prefix = o.out.empty() ? "out/compare-" + ours_name + "-vs-" + theirs_name : o.out;
  const fs::path parent = fs::path(prefix).parent_path();
  if (!parent.empty()) create_output_dir(parent);

  // ---- CSV
  write_file_atomically(prefix + ".csv", [&](std::ostream& f) {
    f << "class,m,n,k,batch,length,heads,kv_heads,head_dim,ours_us,theirs_us,ratio,theirs_source\n";
    for (const auto& r : rows) {
      // Columns m,n,k (GEMM) or batch,length,heads,kv_heads,head_dim (attention); the others empty.
      std::vector<std::string> cols(8);
      const std::size_t first = r.cls.rfind("gemm", 0) == 0 ? 0 : 3;
      for (std::size_t i = 0; i < r.shape.size(); ++i) cols[first + i] = std::to_string(r.shape[i]);
      f << r.cls << ",";
      for (const auto& c : cols) f << c << ",";
      f << fmt("%.9g", r.ours_us) << "," << fmt("%.9g", r.theirs_us) << "," << fmt("%.17g", r.ratio) << ","
        << r.theirs_source << "\n";
    }
  });

  // ---- per-class summary
  const std::vector<std::string> classes = {"gemm_bf16", "gemm_fp8", "context_attention", "generation_attention"};
  std::ostringstream sum;
  sum << "| class | rows | ratio median | p10 | p90 | theirs measured / interpolated / fallback | ratio median, "
         "theirs measured only |\n|---|---|---|---|---|---|---|\n";
  int adjusted = 0;
  for (const auto& cls : classes) {
    std::vector<double> all, exact;
    std::map<std::string, int> by_source;
    for (const auto& r : rows)
      if (r.cls == cls) {
        all.push_back(r.ratio);
        ++by_source[r.theirs_source];
        if (r.theirs_source == "measured") exact.push_back(r.ratio);
        adjusted += r.adjusted;
      }
    if (all.empty()) continue;
    sum << "| " << cls << " | " << all.size() << " | " << fmt("%.3f", quantile(all, 0.5)) << " | "
        << fmt("%.3f", quantile(all, 0.1)) << " | " << fmt("%.3f", quantile(all, 0.9)) << " | "
        << by_source["measured"] << " / " << by_source["interpolated"] << " / " << by_source["roofline-fallback"]
        << " | " << (exact.empty() ? std::string("-") : fmt("%.3f", quantile(exact, 0.5))) << " |\n";
  }

  // ---- Markdown
  std::ostringstream md;
  md << "# Kernel tables side by side: " << ours_name << " vs " << theirs_name << "\n\n";
  md << "Ours: `" << ours_dir << "`; theirs: `" << theirs_dir << "`. Made by `pdsim compare-tables --ours " << ours_dir
     << " --theirs " << theirs_dir << (o.gpu.empty() ? "" : " --gpu " + o.gpu) << "`.\n\n";
  for (const auto& [label, dir] : {std::pair<std::string, std::string>{"Ours", ours_dir}, {"Theirs", theirs_dir}}) {
    const auto prov = provenance(dir + "/gemm_bf16.csv");
    if (prov.empty()) continue;
    md << label << " (from `gemm_bf16.csv`):\n";
    for (const auto& p : prov) md << "- " << p << "\n";
    md << "\n";
  }
  md << "Every row of ours is priced in both table sets by the profiled cost model's lookup "
        "(`sim/cost/profiled.h`). **ratio = ours / theirs** (above 1: our kernel is slower). `theirs_source`: "
        "`measured` = a point of their table; `interpolated` = between their points (GEMM: log-log in m, or the "
        "nearest measured (n, k) line scaled by FLOPs; attention: bilinear in log batch and log length, linear in "
        "heads); `roofline-fallback` = outside their table, their edge scaled by the roofline of GPU profile `"
     << theirs_gpu.name << "`. Times are microseconds per call of one layer on one GPU, as the loader reads the "
     << "tables (non-decreasing along every axis; " << adjusted << " of " << rows.size()
     << " rows of ours were moved by that monotone pass).\n\n";
  md << sum.str() << "\n";
  md << "## Every row\n\n| class | shape | ours_us | theirs_us | ratio | theirs_source |\n|---|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    std::string shape;
    const bool gemm = r.cls.rfind("gemm", 0) == 0;
    const char* const gemm_names[] = {"m", "n", "k"};
    const char* const attn_names[] = {"batch", r.cls == "context_attention" ? "isl" : "kv_len", "heads", "kv_heads",
                                      "head_dim"};
    for (std::size_t i = 0; i < r.shape.size(); ++i)
      shape += (i ? " " : "") + std::string(gemm ? gemm_names[i] : attn_names[i]) + "=" + std::to_string(r.shape[i]);
    md << "| " << r.cls << " | " << shape << " | " << fmt("%.4g", r.ours_us) << " | " << fmt("%.4g", r.theirs_us)
       << " | " << fmt("%.3f", r.ratio) << " | " << r.theirs_source << " |\n";
  }
  write_file_atomically(prefix + ".md", md.str());
  std::cout << ours_name << " vs " << theirs_name << " (ratio = ours / theirs), " << rows.size() << " shapes\n"
            << sum.str() << "wrote " << prefix << ".md and " << prefix << ".csv\n";
  return 0;
}

}  // namespace

Command add_compare_tables_command(CLI::App& app, const GlobalOptions& global) {
  auto o = std::make_shared<CompareOptions>();
  app.add_option("--ours", o->ours, "table directory whose rows are compared (e.g. profiles/measured/h100-sxm-pdsim)")
      ->required();
  app.add_option("--theirs", o->theirs, "table directory priced at the same shapes (e.g. profiles/measured/h100-sxm)")
      ->required();
  app.add_option("--out", o->out, "output prefix: writes PREFIX.md and PREFIX.csv (default out/compare-OURS-vs-THEIRS)");
  app.add_option("--gpu", o->gpu,
                 "GPU profile (profiles/gpus/NAME.json) whose roofline prices shapes outside their tables (default: "
                 "the profile named like the --theirs directory)");
  return [o, &global] { return compare_tables(*o, global); };
}

}  // namespace pdsim::cli
