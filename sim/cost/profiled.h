// Profiled cost model: prices ops from measured per-kernel latency tables
// (profiles/measured/<gpu>/*.csv, imported from NVIDIA AIConfigurator's vLLM
// 0.14.0 tables by tools/profiles/import_aiconfigurator.py).
//
// Tables (latency_us per call, one layer, per GPU):
//   gemm_<bf16|fp8>.csv              m,n,k
//   context_attention_bf16.csv       batch,isl,heads,kv_heads,head_dim   (equal prompts, no cached prefix)
//   generation_attention_bf16.csv    batch,kv_len,heads,kv_heads,head_dim (one new token per sequence)
//   allreduce.csv                    gpus,bytes
//   elementwise_<op>.csv             tokens,flops,bytes,kernels (optional: pdsim profile writes them,
//                                    one per elementwise op of the op list, e.g. kv_append_rope)
// Lookup:
//   GEMM: exact (n,k) line, log-log interpolation in m; absent (n,k): nearest
//     measured line in log space, scaled by the FLOP ratio.
//   Attention: batch x length grid per (heads, kv_heads, head_dim) shape,
//     bilinear in (log batch, log length) on log latency; a shape that is not
//     measured is interpolated linearly in heads between the two nearest
//     shapes with the same kv_heads (or both MHA). A ragged batch is mapped to
//     an equal-length batch: prefill length L with seqs*L(L+1)/2 = causal pairs
//     (exact for prompts without cached prefix), decode length = mean KV tokens.
//   All-reduce: per GPU count, log-log interpolation in bytes.
//   Elementwise: per op name, kernel count (an op list that launches
//     another number of kernels is another implementation) and HBM bytes
//     per token (one line per model shape and TP degree: at equal bytes,
//     1024 rows of 4096 and 512 of 8192 differ by 10% on an H200), log-log
//     interpolation in tokens (Op::m). Another bytes per token: the line
//     nearest in log bytes per token at the same tokens, scaled by the
//     roofline's ratio ("roofline-fallback").
// Outside a table's range: the roofline, scaled to meet the table at its edge
//   (t = t_table(edge) x roofline(query) / roofline(edge)), marked
//   "roofline-fallback". P2P, and elementwise ops without a table of their
//   name and kernel count (the vLLM tables have none): the roofline, marked
//   "roofline".
// Each table is made non-decreasing along every axis when loaded, so
// predictions are monotone in tokens and context: along the length (GEMM: m)
// axis by isotonic regression in log time (a run of points that would
// decrease becomes their geometric mean: timing noise at the small, flat end
// averages out, and one slow outlier does not lift every later point); across
// batch sizes by a floor at the smaller batch's value. Prices at table points
// are the stored values exactly wherever no such run or floor changed them.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sim/cost/cost_model.h"

namespace pdsim {

// y(x) for x > 0 through measured points, linear in (log x, log y).
struct LogCurve {
  std::vector<double> xs, ys;    // xs strictly increasing, ys > 0
  std::vector<double> lxs, lys;  // their logs

  static LogCurve from(std::vector<double> xs, std::vector<double> ys);
  bool contains(double x) const { return !xs.empty() && x >= xs.front() && x <= xs.back(); }
  // REQUIRES: contains(x). *exact is set when x is one of xs.
  double at(double x, bool* exact) const;
  void make_monotone();  // isotonic (pool adjacent violators) in log y
};

struct GemmTable {
  struct Line {
    std::int64_t n = 0, k = 0;
    LogCurve t;  // seconds over m
  };
  std::vector<Line> lines;           // sorted by (n, k)
  std::vector<std::int64_t> ns, ks;  // distinct values, sorted
  std::string file;
  const Line* exact(std::int64_t n, std::int64_t k) const;
  const Line* nearest(std::int64_t n, std::int64_t k) const;
  void index();  // sorts lines, fills ns/ks
};

struct AttentionTable {
  struct Row {
    std::int64_t batch = 0;
    LogCurve t;  // seconds over length (isl or kv_len)
  };
  struct Shape {
    int heads = 0, kv_heads = 0, head_dim = 0;
    std::vector<Row> rows;  // sorted by batch
  };
  std::vector<Shape> shapes;  // sorted by (head_dim, kv_heads, heads)
  std::vector<int> mha;       // indices of shapes with heads == kv_heads, sorted by (head_dim, heads)
  std::string file;
  void index();
};

struct AllReduceTable {
  struct Group {
    int gpus = 0;
    LogCurve t;  // seconds over bytes
  };
  std::vector<Group> groups;  // sorted by gpus
  std::string file;
};

struct ElementwiseTable {
  struct Line {
    std::string op;  // the op list's name (sim/model/ops.cc)
    int kernels = 0;
    double bytes_per_token = 0;
    LogCurve t;  // seconds over tokens
  };
  std::vector<Line> lines;  // sorted by (op, kernels, bytes_per_token)
};

// All measured tables of one GPU. Immutable once loaded; shared.
struct MeasuredTables {
  std::string gpu, dir;
  GemmTable gemm_bf16, gemm_fp8;  // gemm_fp8 empty when the GPU has no fp8 table
  AttentionTable context, generation;
  AllReduceTable allreduce;
  ElementwiseTable elementwise;  // empty when the directory has no elementwise_<op>.csv
};

// Raw rows of one measured CSV: '#' lines are provenance, then a header that
// must equal `columns`, then numeric rows. Every problem (missing file, bad
// header, wrong column count, non-number, non-positive value, no rows) is an
// InputError naming file:line.
struct CsvRows {
  std::vector<std::vector<double>> rows;
  std::vector<int> lines;  // 1-based line of each row
};
CsvRows read_measured_csv(const std::string& path, const std::vector<std::string>& columns);

// Tables from already-read rows (columns as in the files); `file` names them in messages.
GemmTable build_gemm_table(const CsvRows& csv, const std::string& file);
AttentionTable build_attention_table(const CsvRows& csv, const std::string& file);
AllReduceTable build_allreduce_table(const CsvRows& csv, const std::string& file);
// The elementwise tables in `dir`: (op, file name) of every elementwise_<op>.csv,
// sorted by op (a directory's order is the file system's); none when `dir` is absent.
std::vector<std::pair<std::string, std::string>> elementwise_table_files(const std::string& dir);
// Adds op `op`'s rows (tokens,flops,bytes,kernels,latency_us) to `table`; rows
// of equal kernels, bytes per token and tokens (two models of one shape) keep the faster.
void add_elementwise_rows(ElementwiseTable& table, const std::string& op, const CsvRows& csv);

// The op that one table row measures (count 1, one kernel), for the roofline:
// a GEMM; attention over `batch` equal sequences of `length` tokens (bf16
// activations and KV); a ring all-reduce.
Op gemm_row_op(double m, double n, double k, int weight_bytes);
Op attention_row_op(bool decode, double batch, double length, int heads, int kv_heads, int head_dim);
Op allreduce_row_op(int gpus, double bytes);

// Loads <data_dir>/profiles/measured/<gpu>/, once per directory per process
// (later calls share the same immutable tables). A missing directory or file
// is an InputError naming `where`, the GPU and the file.
std::shared_ptr<const MeasuredTables> load_measured_tables(const std::string& data_dir, const std::string& gpu,
                                                           const std::string& where);
// Same, without the cache (tests, tools).
MeasuredTables read_measured_tables(const std::string& dir, const std::string& gpu, const std::string& where);

class ProfiledCostModel : public CostModel {
 public:
  // weight_bytes selects the GEMM table (2: bf16, 1: fp8); kv_bytes must be 2
  // (only bf16 attention tables exist). The roofline (calibrated when the GPU
  // profile has factors) prices elementwise ops and scales fallbacks.
  ProfiledCostModel(std::shared_ptr<const MeasuredTables> tables, const GpuSpec& gpu, int weight_bytes, int kv_bytes,
                    const std::string& where);
  std::string name() const override { return "profiled"; }
  OpPrice price(const Op& op) const override;

  // One call of one op (count ignored), in seconds, with its source.
  struct Lookup {
    double time_s = 0;
    const char* source = "";
  };
  Lookup gemm(std::int64_t m, std::int64_t n, std::int64_t k) const;
  // Attention for `batch` equal sequences of `length` tokens (prefill: prompt
  // tokens; decode: KV tokens read per sequence).
  Lookup attention(bool decode, double batch, double length, int heads, int kv_heads, int head_dim) const;
  Lookup allreduce(int gpus, double bytes) const;
  // One call of elementwise op `op` (its name, kernels, tokens m, bytes and FLOPs); source "roofline"
  // when no table of its name and kernel count exists.
  Lookup elementwise(const Op& op) const;

 private:
  double roof_gemm(double m, double n, double k) const;
  double roof_attention(bool decode, double batch, double length, int heads, int kv_heads, int head_dim) const;
  double roof_allreduce(int gpus, double bytes) const;
  // Attention within one measured shape: bilinear in (log batch, log length);
  // outside the measured batches or lengths, the edge scaled by the roofline
  // (sets `clamped`). `exact` is set at a table point.
  double shape_at(bool decode, const AttentionTable::Shape& s, double batch, double length, bool& clamped,
                  bool& exact) const;

  std::shared_ptr<const MeasuredTables> tables_;
  const GemmTable* gemm_;
  RooflineCostModel roofline_;
  int weight_bytes_;
};

}  // namespace pdsim
