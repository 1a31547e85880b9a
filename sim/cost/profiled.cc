#include "sim/cost/profiled.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <tuple>

#include "sim/core/error.h"

namespace pdsim {

// ---------------------------------------------------------------- LogCurve

LogCurve LogCurve::from(std::vector<double> x, std::vector<double> y) {
  PDSIM_CHECK(x.size() == y.size() && !x.empty(), "LogCurve needs matching, non-empty points");
  LogCurve c;
  c.xs = std::move(x);
  c.ys = std::move(y);
  for (std::size_t i = 0; i < c.xs.size(); ++i) {
    PDSIM_CHECK(c.xs[i] > 0 && c.ys[i] > 0 && (i == 0 || c.xs[i] > c.xs[i - 1]),
                "LogCurve points must be positive and increasing");
    c.lxs.push_back(std::log(c.xs[i]));
    c.lys.push_back(std::log(c.ys[i]));
  }
  return c;
}

double LogCurve::at(double x, bool* exact) const {
  const auto it = std::lower_bound(xs.begin(), xs.end(), x);
  const std::size_t i = static_cast<std::size_t>(it - xs.begin());
  if (it != xs.end() && *it == x) {
    if (exact) *exact = true;
    return ys[i];
  }
  if (exact) *exact = false;
  PDSIM_CHECK(i > 0 && i < xs.size(), "LogCurve::at outside its range");
  const double w = (std::log(x) - lxs[i - 1]) / (lxs[i] - lxs[i - 1]);
  // Clamped so that exp/log rounding cannot break monotonicity.
  return std::clamp(std::exp(lys[i - 1] + w * (lys[i] - lys[i - 1])), ys[i - 1], ys[i]);
}

void LogCurve::make_monotone() {
  // Pool adjacent violators (isotonic regression of log y, equal weights):
  // each run of points that would decrease becomes their geometric mean.
  // Unlike a running max, one slow outlier (a first call on cold clocks, say)
  // does not lift every later point to its value. Points outside any pooled
  // run keep their stored value exactly.
  struct Block {
    std::size_t begin, size;
    double log_sum;
    double mean() const { return log_sum / static_cast<double>(size); }
  };
  std::vector<Block> blocks;
  for (std::size_t i = 0; i < lys.size(); ++i) {
    blocks.push_back({i, 1, lys[i]});
    while (blocks.size() > 1 && blocks[blocks.size() - 2].mean() > blocks.back().mean()) {
      const Block last = blocks.back();
      blocks.pop_back();
      blocks.back().size += last.size;
      blocks.back().log_sum += last.log_sum;
    }
  }
  for (const Block& b : blocks) {
    if (b.size == 1) continue;
    const double ly = b.mean();
    for (std::size_t i = b.begin; i < b.begin + b.size; ++i) lys[i] = ly, ys[i] = std::exp(ly);
  }
}

// ---------------------------------------------------------------- tables

const GemmTable::Line* GemmTable::exact(std::int64_t n, std::int64_t k) const {
  const auto it = std::lower_bound(
      lines.begin(), lines.end(), std::make_pair(n, k),
      [](const Line& l, const std::pair<std::int64_t, std::int64_t>& key) { return std::make_pair(l.n, l.k) < key; });
  return it != lines.end() && it->n == n && it->k == k ? &*it : nullptr;
}

namespace {
// Nearest value of a sorted positive list in log distance.
std::int64_t nearest_log(const std::vector<std::int64_t>& v, double x) {
  const auto it = std::lower_bound(v.begin(), v.end(), static_cast<std::int64_t>(std::ceil(x)));
  if (it == v.begin()) return v.front();
  if (it == v.end()) return v.back();
  const double hi = static_cast<double>(*it), lo = static_cast<double>(*(it - 1));
  return std::log(hi / x) < std::log(x / lo) ? *it : *(it - 1);
}
double log_dist(double a, double b) { return std::fabs(std::log(a / b)); }
}  // namespace

const GemmTable::Line* GemmTable::nearest(std::int64_t n, std::int64_t k) const {
  if (lines.empty()) return nullptr;
  if (const Line* l = exact(nearest_log(ns, static_cast<double>(n)), nearest_log(ks, static_cast<double>(k)))) return l;
  // The grid has a hole there: scan (rare).
  const Line* best = &lines.front();
  double best_d = 1e300;
  for (const auto& l : lines) {
    const double d = log_dist(static_cast<double>(l.n), static_cast<double>(n)) +
                     log_dist(static_cast<double>(l.k), static_cast<double>(k));
    if (d < best_d) best_d = d, best = &l;
  }
  return best;
}

void GemmTable::index() {
  std::sort(lines.begin(), lines.end(),
            [](const Line& a, const Line& b) { return std::tie(a.n, a.k) < std::tie(b.n, b.k); });
  ns.clear();
  ks.clear();
  for (const auto& l : lines) ns.push_back(l.n), ks.push_back(l.k);
  for (auto* v : {&ns, &ks}) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
  }
}

void AttentionTable::index() {
  std::sort(shapes.begin(), shapes.end(), [](const Shape& a, const Shape& b) {
    return std::tie(a.head_dim, a.kv_heads, a.heads) < std::tie(b.head_dim, b.kv_heads, b.heads);
  });
  mha.clear();
  for (std::size_t i = 0; i < shapes.size(); ++i)
    if (shapes[i].heads == shapes[i].kv_heads) mha.push_back(static_cast<int>(i));
  std::sort(mha.begin(), mha.end(), [&](int a, int b) {
    return std::tie(shapes[a].head_dim, shapes[a].heads) < std::tie(shapes[b].head_dim, shapes[b].heads);
  });
}

// ---------------------------------------------------------------- CSV

namespace {
std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const auto comma = line.find(',', start);
    out.push_back(line.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}
}  // namespace

CsvRows read_measured_csv(const std::string& path, const std::vector<std::string>& columns) {
  std::ifstream in(path);
  if (!in) throw InputError(path, "cannot open measured table");
  CsvRows out;
  std::string line;
  int line_no = 0;
  bool header = false;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string where = path + ":" + std::to_string(line_no);
    if (!line.empty() && line[0] == '#') {
      if (header) throw InputError(where, "comment line after the header");
      continue;
    }
    if (line.empty()) throw InputError(where, "empty line");
    if (!header) {
      if (line != join(columns))
        throw InputError(where, "header is \"" + line + "\", expected \"" + join(columns) + "\"");
      header = true;
      continue;
    }
    const auto fields = split(line);
    if (fields.size() != columns.size())
      throw InputError(where, "expected " + std::to_string(columns.size()) + " comma-separated values (" +
                                  join(columns) + "), got " + std::to_string(fields.size()));
    std::vector<double> row;
    for (std::size_t i = 0; i < fields.size(); ++i) {
      const char* s = fields[i].c_str();
      char* end = nullptr;
      errno = 0;
      const double v = std::strtod(s, &end);
      if (fields[i].empty() || end != s + fields[i].size() || errno == ERANGE || !std::isfinite(v))
        throw InputError(where, "column " + columns[i] + ": \"" + fields[i] + "\" is not a finite number");
      if (!(v > 0)) throw InputError(where, "column " + columns[i] + ": must be > 0, got " + fields[i]);
      if (columns[i] != "latency_us" && v != std::floor(v))
        throw InputError(where, "column " + columns[i] + ": must be an integer, got " + fields[i]);
      row.push_back(v);
    }
    out.rows.push_back(std::move(row));
    out.lines.push_back(line_no);
  }
  if (!header) throw InputError(path, "no header line \"" + join(columns) + "\" (empty or truncated file)");
  if (out.rows.empty()) throw InputError(path, "no data rows (truncated file?)");
  return out;
}

namespace {

// Groups rows by all columns but the last two (the curve's x and the latency),
// rejecting duplicate keys. Returns key -> (x -> (latency_s, line)).
using Points = std::map<double, std::pair<double, int>>;
std::map<std::vector<double>, Points> group(const CsvRows& csv, std::size_t x_col, const std::string& path) {
  std::map<std::vector<double>, Points> out;
  for (std::size_t r = 0; r < csv.rows.size(); ++r) {
    const auto& row = csv.rows[r];
    std::vector<double> key;
    for (std::size_t i = 0; i + 1 < row.size(); ++i)
      if (i != x_col) key.push_back(row[i]);
    auto [it, fresh] = out[key].emplace(row[x_col], std::make_pair(row.back() * 1e-6, csv.lines[r]));
    if (!fresh)
      throw InputError(path + ":" + std::to_string(csv.lines[r]),
                       "duplicate row (same key as line " + std::to_string(it->second.second) + ")");
  }
  return out;
}

LogCurve curve_of(const Points& p) {
  std::vector<double> x, y;
  for (const auto& [xv, tv] : p) x.push_back(xv), y.push_back(tv.first);
  LogCurve c = LogCurve::from(std::move(x), std::move(y));
  c.make_monotone();
  return c;
}

}  // namespace

GemmTable build_gemm_table(const CsvRows& csv, const std::string& path) {
  GemmTable t;
  t.file = path;
  for (const auto& [key, pts] : group(csv, 0, path)) {
    GemmTable::Line l;
    l.n = static_cast<std::int64_t>(key[0]);
    l.k = static_cast<std::int64_t>(key[1]);
    l.t = curve_of(pts);
    t.lines.push_back(std::move(l));
  }
  t.index();
  return t;
}

AttentionTable build_attention_table(const CsvRows& csv, const std::string& path) {
  // key = (batch, heads, kv_heads, head_dim); x = length.
  std::map<std::tuple<int, int, int>, AttentionTable::Shape> shapes;
  for (const auto& [key, pts] : group(csv, 1, path)) {
    auto& s = shapes[{static_cast<int>(key[1]), static_cast<int>(key[2]), static_cast<int>(key[3])}];
    s.heads = static_cast<int>(key[1]);
    s.kv_heads = static_cast<int>(key[2]);
    s.head_dim = static_cast<int>(key[3]);
    s.rows.push_back({static_cast<std::int64_t>(key[0]), curve_of(pts)});
  }
  AttentionTable t;
  t.file = path;
  for (auto& [key, s] : shapes) {
    std::sort(s.rows.begin(), s.rows.end(), [](const auto& a, const auto& b) { return a.batch < b.batch; });
    // Non-decreasing in batch at every length the smaller batch also has.
    for (std::size_t r = 1; r < s.rows.size(); ++r) {
      auto& cur = s.rows[r].t;
      const auto& prev = s.rows[r - 1].t;
      for (std::size_t i = 0; i < cur.xs.size(); ++i) {
        const auto it = std::lower_bound(prev.xs.begin(), prev.xs.end(), cur.xs[i]);
        if (it != prev.xs.end() && *it == cur.xs[i]) {
          const double floor_s = prev.ys[static_cast<std::size_t>(it - prev.xs.begin())];
          if (cur.ys[i] < floor_s) cur.ys[i] = floor_s, cur.lys[i] = std::log(floor_s);
        }
      }
      cur.make_monotone();
    }
    t.shapes.push_back(std::move(s));
  }
  t.index();
  return t;
}

AllReduceTable build_allreduce_table(const CsvRows& csv, const std::string& path) {
  AllReduceTable t;
  t.file = path;
  for (const auto& [key, pts] : group(csv, 1, path)) t.groups.push_back({static_cast<int>(key[0]), curve_of(pts)});
  return t;
}

std::vector<std::pair<std::string, std::string>> elementwise_table_files(const std::string& dir) {
  const std::string prefix = "elementwise_", suffix = ".csv";
  std::vector<std::pair<std::string, std::string>> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > prefix.size() + suffix.size() && name.rfind(prefix, 0) == 0 &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      files.emplace_back(name.substr(prefix.size(), name.size() - prefix.size() - suffix.size()), name);
  }
  std::sort(files.begin(), files.end());
  return files;
}

void add_elementwise_rows(ElementwiseTable& table, const std::string& op, const CsvRows& csv) {
  std::map<std::pair<int, double>, Points> fastest;  // (kernels, bytes per token) -> tokens -> seconds
  for (std::size_t r = 0; r < csv.rows.size(); ++r) {
    const auto& row = csv.rows[r];
    const double tokens = row[0], seconds = row[4] * 1e-6;
    auto [it, fresh] =
        fastest[{static_cast<int>(row[3]), row[2] / tokens}].emplace(tokens, std::make_pair(seconds, csv.lines[r]));
    if (!fresh && seconds < it->second.first) it->second = {seconds, csv.lines[r]};
  }
  for (const auto& [key, points] : fastest)
    table.lines.push_back({op, key.first, key.second, curve_of(points)});
  std::sort(table.lines.begin(), table.lines.end(), [](const auto& a, const auto& b) {
    return std::tie(a.op, a.kernels, a.bytes_per_token) < std::tie(b.op, b.kernels, b.bytes_per_token);
  });
}

namespace {
GemmTable read_gemm(const std::string& path) {
  return build_gemm_table(read_measured_csv(path, {"m", "n", "k", "latency_us"}), path);
}
AttentionTable read_attention(const std::string& path, const char* length_column) {
  return build_attention_table(
      read_measured_csv(path, {"batch", length_column, "heads", "kv_heads", "head_dim", "latency_us"}), path);
}
AllReduceTable read_allreduce(const std::string& path) {
  return build_allreduce_table(read_measured_csv(path, {"gpus", "bytes", "latency_us"}), path);
}
}  // namespace

Op gemm_row_op(double m, double n, double k, int weight_bytes) {
  Op op{"gemm", OpClass::kGemm};
  op.flops = 2 * m * n * k;
  op.bytes = weight_bytes * n * k + 2 * (m * k + m * n);
  op.m = static_cast<std::int64_t>(m), op.n = static_cast<std::int64_t>(n), op.k = static_cast<std::int64_t>(k);
  return op;
}

Op attention_row_op(bool decode, double b, double len, int heads, int kv_heads, int hd) {
  Op op{"attention", decode ? OpClass::kAttentionDecode : OpClass::kAttentionPrefill};
  op.flops = 4.0 * heads * hd * (decode ? b * len : b * len * (len + 1) / 2);
  op.bytes = 2 * 2.0 * kv_heads * hd * b * len + 2 * 2.0 * heads * hd * (decode ? b : b * len);
  if (!decode) {  // the query rows and causal pairs, as build_ops gives a batch of such prompts
    op.m = static_cast<std::int64_t>(b * len);
    op.pairs = b * len * (len + 1) / 2;
  }
  return op;
}

Op allreduce_row_op(int gpus, double bytes) {
  Op op{"allreduce", OpClass::kAllReduce};
  op.bytes = bytes;
  op.group_gpus = gpus;
  return op;
}

MeasuredTables read_measured_tables(const std::string& dir, const std::string& gpu, const std::string& where) {
  for (const char* f :
       {"gemm_bf16.csv", "context_attention_bf16.csv", "generation_attention_bf16.csv", "allreduce.csv"}) {
    const std::string path = dir + "/" + f;
    if (!std::filesystem::exists(path))
      throw InputError(
          where, "the profiled cost model has no measured tables for GPU \"" + gpu + "\": missing " + path +
                     " (measured tables exist for the GPUs under profiles/measured/; see the README on adding a GPU)");
  }
  MeasuredTables t;
  t.gpu = gpu;
  t.dir = dir;
  t.gemm_bf16 = read_gemm(dir + "/gemm_bf16.csv");
  if (std::filesystem::exists(dir + "/gemm_fp8.csv")) t.gemm_fp8 = read_gemm(dir + "/gemm_fp8.csv");
  t.context = read_attention(dir + "/context_attention_bf16.csv", "isl");
  t.generation = read_attention(dir + "/generation_attention_bf16.csv", "kv_len");
  t.allreduce = read_allreduce(dir + "/allreduce.csv");
  for (const auto& [op, file] : elementwise_table_files(dir))
    add_elementwise_rows(t.elementwise, op,
                         read_measured_csv(dir + "/" + file, {"tokens", "flops", "bytes", "kernels", "latency_us"}));
  return t;
}

std::shared_ptr<const MeasuredTables> load_measured_tables(const std::string& data_dir, const std::string& gpu,
                                                           const std::string& where) {
  // Immutable tables shared by every cost model of the process (a sweep's
  // threads included); the lock only guards the map.
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const MeasuredTables>> cache;
  const std::string dir = data_dir + "/profiles/measured/" + gpu;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[dir];
  if (!slot) slot = std::make_shared<const MeasuredTables>(read_measured_tables(dir, gpu, where));
  return slot;
}

// ---------------------------------------------------------------- model

namespace {
const GemmTable* pick_gemm(const MeasuredTables* t, int weight_bytes, const std::string& where) {
  PDSIM_CHECK(t != nullptr, "no tables");
  if (weight_bytes == 2) return &t->gemm_bf16;
  if (weight_bytes == 1 && !t->gemm_fp8.lines.empty()) return &t->gemm_fp8;
  throw InputError(where, "the profiled cost model has no GEMM table for " + std::to_string(weight_bytes) +
                              "-byte weights on GPU \"" + t->gpu + "\": missing " + t->dir + "/gemm_" +
                              (weight_bytes == 1 ? "fp8" : "fp32") + ".csv");
}
}  // namespace

ProfiledCostModel::ProfiledCostModel(std::shared_ptr<const MeasuredTables> tables, const GpuSpec& gpu, int weight_bytes,
                                     int kv_bytes, const std::string& where)
    : tables_(std::move(tables)),
      gemm_(pick_gemm(tables_.get(), weight_bytes, where)),
      roofline_(gpu, weight_bytes, where),
      weight_bytes_(weight_bytes) {
  if (kv_bytes != 2)
    throw InputError(where, "the profiled cost model has no attention table for a " + std::to_string(kv_bytes) +
                                "-byte KV cache on GPU \"" + tables_->gpu + "\": missing " + tables_->dir +
                                "/context_attention_" + (kv_bytes == 1 ? "fp8" : "fp32") + ".csv");
}

double ProfiledCostModel::roof_gemm(double m, double n, double k) const {
  return roofline_.price(gemm_row_op(m, n, k, weight_bytes_)).time_s;
}

double ProfiledCostModel::roof_attention(bool decode, double b, double len, int heads, int kv_heads, int hd) const {
  return roofline_.price(attention_row_op(decode, b, len, heads, kv_heads, hd)).time_s;
}

double ProfiledCostModel::roof_allreduce(int gpus, double bytes) const {
  return roofline_.price(allreduce_row_op(gpus, bytes)).time_s;
}

ProfiledCostModel::Lookup ProfiledCostModel::gemm(std::int64_t m, std::int64_t n, std::int64_t k) const {
  const GemmTable::Line* line = gemm_->exact(n, k);
  const bool exact_nk = line != nullptr;
  if (!line) line = gemm_->nearest(n, k);
  const double md = static_cast<double>(m);
  if (line->t.contains(md)) {
    bool exact = false;
    const double t = line->t.at(md, &exact);
    if (exact_nk) return {t, exact ? "measured" : "interpolated"};
    return {t * (static_cast<double>(n) * static_cast<double>(k)) / (static_cast<double>(line->n) * line->k),
            "interpolated"};
  }
  const double edge_m = md < line->t.xs.front() ? line->t.xs.front() : line->t.xs.back();
  const double t_edge = line->t.at(edge_m, nullptr);
  return {t_edge * roof_gemm(md, static_cast<double>(n), static_cast<double>(k)) /
              roof_gemm(edge_m, static_cast<double>(line->n), static_cast<double>(line->k)),
          "roofline-fallback"};
}

double ProfiledCostModel::shape_at(bool decode, const AttentionTable::Shape& s, double b, double len, bool& clamped,
                                   bool& exact) const {
  const auto roof = [&](double batch, double length) {
    return roof_attention(decode, batch, length, s.heads, s.kv_heads, s.head_dim);
  };
  // One measured batch row at `len`; beyond its lengths, its edge scaled by the roofline.
  const auto row_at = [&](const AttentionTable::Row& r) {
    const double lc = std::clamp(len, r.t.xs.front(), r.t.xs.back());
    bool e = false;
    double t = r.t.at(lc, &e);
    exact = e;
    if (lc != len) {
      const double bd = static_cast<double>(r.batch);
      t *= roof(bd, len) / roof(bd, lc);
      clamped = true;
    }
    return t;
  };
  const auto& rows = s.rows;
  PDSIM_CHECK(!rows.empty(), "attention shape without rows");
  const double first = static_cast<double>(rows.front().batch), last = static_cast<double>(rows.back().batch);
  if (b <= first || b >= last) {
    const auto& r = b <= first ? rows.front() : rows.back();
    double t = row_at(r);
    const double rb = static_cast<double>(r.batch);
    if (b != rb) {
      t *= roof(b, len) / roof(rb, len);
      clamped = true;
      exact = false;
    }
    return t;
  }
  const auto hi = std::lower_bound(rows.begin(), rows.end(), b, [](const AttentionTable::Row& r, double v) {
    return static_cast<double>(r.batch) < v;
  });
  if (static_cast<double>(hi->batch) == b) return row_at(*hi);
  const auto lo = hi - 1;
  const double t_lo = row_at(*lo);
  const double t_hi = std::max(row_at(*hi), t_lo);  // a larger batch never costs less
  const double blo = static_cast<double>(lo->batch), bhi = static_cast<double>(hi->batch);
  const double w = std::log(b / blo) / std::log(bhi / blo);
  exact = false;
  return std::clamp(std::exp((1 - w) * std::log(t_lo) + w * std::log(t_hi)), t_lo, t_hi);
}

ProfiledCostModel::Lookup ProfiledCostModel::attention(bool decode, double b, double len, int heads, int kv_heads,
                                                       int hd) const {
  const AttentionTable& table = decode ? tables_->generation : tables_->context;
  const auto& shapes = table.shapes;
  bool clamped = false, exact = false;
  const auto source = [&](bool all_exact) {
    return clamped ? "roofline-fallback" : all_exact ? "measured" : "interpolated";
  };
  const auto it = std::lower_bound(shapes.begin(), shapes.end(), std::make_tuple(hd, kv_heads, heads),
                                   [](const AttentionTable::Shape& s, const std::tuple<int, int, int>& k) {
                                     return std::make_tuple(s.head_dim, s.kv_heads, s.heads) < k;
                                   });
  if (it != shapes.end() && it->heads == heads && it->kv_heads == kv_heads && it->head_dim == hd) {
    const double t = shape_at(decode, *it, b, len, clamped, exact);
    return {t, source(exact)};
  }
  // Linear in heads between two measured shapes.
  const auto between = [&](const AttentionTable::Shape* lo, const AttentionTable::Shape* hi) {
    const double tlo = shape_at(decode, *lo, b, len, clamped, exact);
    const double thi = shape_at(decode, *hi, b, len, clamped, exact);
    const double w = static_cast<double>(heads - lo->heads) / (hi->heads - lo->heads);
    return Lookup{tlo + w * (thi - tlo), source(false)};
  };
  // Same kv_heads and head_dim: `it` is the first shape with more heads.
  if (it != shapes.begin() && it != shapes.end() && (it - 1)->kv_heads == kv_heads && (it - 1)->head_dim == hd &&
      it->kv_heads == kv_heads && it->head_dim == hd)
    return between(&*(it - 1), &*it);
  if (heads == kv_heads) {
    const auto m = std::lower_bound(
        table.mha.begin(), table.mha.end(), std::make_pair(hd, heads),
        [&](int i, const std::pair<int, int>& k) { return std::make_pair(shapes[i].head_dim, shapes[i].heads) < k; });
    if (m != table.mha.begin() && m != table.mha.end() && shapes[*(m - 1)].head_dim == hd && shapes[*m].head_dim == hd)
      return between(&shapes[*(m - 1)], &shapes[*m]);
  }
  // Nearest measured shape, scaled by the roofline (a head layout the tables do not bracket).
  const AttentionTable::Shape* best = nullptr;
  double best_d = 1e300;
  for (const auto& s : shapes) {
    const double d = log_dist(s.heads, heads) + log_dist(s.kv_heads, kv_heads) + log_dist(s.head_dim, hd);
    if (d < best_d) best_d = d, best = &s;
  }
  PDSIM_CHECK(best != nullptr, "empty attention table");
  const double t = shape_at(decode, *best, b, len, clamped, exact) *
                   roof_attention(decode, b, len, heads, kv_heads, hd) /
                   roof_attention(decode, b, len, best->heads, best->kv_heads, best->head_dim);
  return {t, "roofline-fallback"};
}

ProfiledCostModel::Lookup ProfiledCostModel::allreduce(int gpus, double bytes) const {
  const auto& groups = tables_->allreduce.groups;
  const AllReduceTable::Group* g = nullptr;
  double best_d = 1e300;
  for (const auto& c : groups) {  // a handful of GPU counts
    const double d = log_dist(c.gpus, gpus);
    if (d < best_d) best_d = d, g = &c;
  }
  PDSIM_CHECK(g != nullptr, "empty all-reduce table");
  if (g->gpus == gpus && g->t.contains(bytes)) {
    bool exact = false;
    const double t = g->t.at(bytes, &exact);
    return {t, exact ? "measured" : "interpolated"};
  }
  const double bytes_e = std::clamp(bytes, g->t.xs.front(), g->t.xs.back());
  return {g->t.at(bytes_e, nullptr) * roof_allreduce(gpus, bytes) / roof_allreduce(g->gpus, bytes_e),
          "roofline-fallback"};
}

ProfiledCostModel::Lookup ProfiledCostModel::elementwise(const Op& op) const {
  auto one_call = [&](double bytes) {  // the op at `bytes` per call, its FLOPs in proportion
    Op o = op;
    o.count = 1;
    if (op.bytes > 0) o.flops = op.flops * bytes / op.bytes;
    o.bytes = bytes;
    return roofline_.price(o).time_s;
  };
  const double tokens = static_cast<double>(op.m);
  const ElementwiseTable::Line* line = nullptr;
  double best_d = 1e300;
  if (tokens > 0 && op.bytes > 0) {
    const double per_token = op.bytes / tokens;
    for (const auto& l : tables_->elementwise.lines) {  // a few lines per op
      if (l.op != op.name || l.kernels != op.kernels) continue;
      const double d = std::fabs(std::log(l.bytes_per_token / per_token));
      if (d < best_d) best_d = d, line = &l;
    }
  }
  if (line == nullptr) return {one_call(op.bytes), "roofline"};
  const bool same_shape = best_d < 1e-9;
  if (same_shape && line->t.contains(tokens)) {
    bool exact = false;
    const double t = line->t.at(tokens, &exact);
    return {t, exact ? "measured" : "interpolated"};
  }
  // The line at the nearest measured tokens, scaled by the roofline from that point to the op.
  const double tokens_e = std::clamp(tokens, line->t.xs.front(), line->t.xs.back());
  return {line->t.at(tokens_e, nullptr) * one_call(op.bytes) / one_call(line->bytes_per_token * tokens_e),
          "roofline-fallback"};
}

OpPrice ProfiledCostModel::price(const Op& op) const {
  OpPrice p = roofline_.price(op);
  Lookup l;
  switch (op.op_class) {
    case OpClass::kGemm:
      l = gemm(op.m, op.n, op.k);
      break;
    case OpClass::kAttentionPrefill: {
      const double b = static_cast<double>(op.seqs);
      // Equal prompts with the same causal pairs: b * L(L+1)/2 = pairs.
      const double len = (std::sqrt(1 + 8 * op.pairs / b) - 1) / 2;
      l = attention(false, b, len, op.heads, op.kv_heads, op.head_dim);
      break;
    }
    case OpClass::kAttentionDecode: {
      const double b = static_cast<double>(op.seqs);
      l = attention(true, b, op.kv_tokens / b, op.heads, op.kv_heads, op.head_dim);
      break;
    }
    case OpClass::kAllReduce:
      l = allreduce(op.group_gpus, op.bytes);
      break;
    case OpClass::kElementwise:
      l = elementwise(op);
      break;
    case OpClass::kP2P:
      return p;  // no table: roofline, source "roofline"
  }
  p.time_s = l.time_s * op.count;
  p.source = l.source;
  return p;
}

}  // namespace pdsim
