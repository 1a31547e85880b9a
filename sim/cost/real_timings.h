// RealTimings: the real-kernel model's measured batch timings kept in a file
// (scenario "real_kernel.timings_file", `pdsim run|validate --timings FILE`).
// A run finds each batch shape there first and measures only the shapes the
// file lacks; after a complete run the file holds every shape the run used.
// Re-running with a file that already holds them all measures nothing, so
// its outputs are byte-identical: a real-kernel run can be replayed and
// compared exactly (measurements otherwise differ by the machine's noise).
//
// Format (CSV; `#` lines are provenance and are checked on load):
//   # pdsim real-kernel timings
//   # model: <catalog name>
//   # device: <backend device string>
//   tp,prefill_seqs,prefill_tokens,decode_seqs,decode_kv_tokens,logit_rows,prefill_lens,prefill_prefix,decode_ctx,op,seconds
// one row per op of one layer (and `lm_head`, once per batch) per batch
// shape; seconds printed with 17 significant digits (exact round trip).
// A batch shape is its sequences as executed: prefill_lens (new tokens per
// prefill sequence), prefill_prefix (the cached tokens before each, same
// order; the pairs ascending) and decode_ctx (KV tokens per decode sequence,
// the new one included, ascending), each space-separated (empty when none);
// the four totals before them are the counts and sums of prefill_lens and
// decode_ctx, written for filtering in pandas or Excel and checked on load.
// A file for another model or device is an input error: its times would not
// be this run's; so is one from before shapes were kept per sequence
// (2026-12-03: its rows name totals only). A file from before prefixes were
// executed (no prefill_prefix column) is read with every prefix 0, which is
// what its batches ran: a chunk after a prefix ran as its new tokens alone.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace pdsim {

// One executed batch shape on one TP shard: the sequences' lengths, ascending
// ((new, prefix) pairs for prefill sequences).
struct RealBatchKey {
  int tp = 1;
  std::vector<int> prefill_lens;    // new tokens of each prefill sequence
  std::vector<int> prefill_prefix;  // cached tokens before them, one per prefill sequence
  std::vector<int> decode_ctx;      // KV tokens each decode sequence reads (its new one included)
  std::int64_t logit_rows = 0;
  bool operator<(const RealBatchKey& o) const {
    return std::tie(tp, prefill_lens, prefill_prefix, decode_ctx, logit_rows) <
           std::tie(o.tp, o.prefill_lens, o.prefill_prefix, o.decode_ctx, o.logit_rows);
  }
};

struct RealBatchTiming {
  std::map<std::string, double> per_layer_s;  // op name -> one layer
  double lm_head_s = 0;
};

class RealTimings {
 public:
  // Loads `path` when it exists (InputError naming file:line on a bad file
  // or one for another model); otherwise starts empty.
  RealTimings(std::string path, std::string model);

  // The device the timings were measured on must be `device` (InputError
  // naming `where` otherwise); an empty file takes it.
  void bind_device(const std::string& device, const std::string& where);

  // The timing of `key`, or nullptr. `from_file` (when given) says whether it
  // was read from the file rather than measured earlier in this run.
  const RealBatchTiming* find(const RealBatchKey& key, bool* from_file = nullptr) const;
  void add(const RealBatchKey& key, RealBatchTiming timing);
  std::int64_t replayed() const { return replayed_; }
  std::int64_t added() const { return added_; }
  void count_replay() { ++replayed_; }

  // Writes every entry (sorted by key) when the run added any; atomic (temp file + rename).
  void save() const;

 private:
  std::string path_, model_, device_;
  std::map<RealBatchKey, RealBatchTiming> entries_;
  std::set<RealBatchKey> file_keys_;  // the entries read from the file
  std::int64_t replayed_ = 0, added_ = 0;
};

}  // namespace pdsim
