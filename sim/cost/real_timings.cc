#include "sim/cost/real_timings.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <fstream>
#include <sstream>
#include <vector>

#include "sim/core/error.h"
#include "sim/core/output_file.h"

namespace pdsim {

namespace {
constexpr const char* kHeader =
    "tp,prefill_seqs,prefill_tokens,decode_seqs,decode_kv_tokens,logit_rows,prefill_lens,prefill_prefix,decode_ctx,op,"
    "seconds";
// Before prefixes were executed (2026-12-03): read with every prefix 0.
constexpr const char* kNoPrefixHeader =
    "tp,prefill_seqs,prefill_tokens,decode_seqs,decode_kv_tokens,logit_rows,prefill_lens,decode_ctx,op,seconds";
constexpr const char* kTotalsHeader = "tp,prefill_seqs,prefill_tokens,decode_seqs,decode_kv_tokens,logit_rows,op,seconds";
constexpr const char* kMagic = "# pdsim real-kernel timings";

std::int64_t sum(const std::vector<int>& v) {
  std::int64_t s = 0;
  for (int x : v) s += x;
  return s;
}

std::string join(const std::vector<int>& v) {
  std::string out;
  for (int x : v) {
    if (!out.empty()) out += ' ';
    out += std::to_string(x);
  }
  return out;
}

// A row's first six columns (tp and the totals of its lists), as written and checked.
std::string totals(const RealBatchKey& k) {
  return std::to_string(k.tp) + "," + std::to_string(k.prefill_lens.size()) + "," +
         std::to_string(sum(k.prefill_lens)) + "," + std::to_string(k.decode_ctx.size()) + "," +
         std::to_string(sum(k.decode_ctx)) + "," + std::to_string(k.logit_rows);
}
}  // namespace

RealTimings::RealTimings(std::string path, std::string model) : path_(std::move(path)), model_(std::move(model)) {
  std::ifstream in(path_);
  if (!in) {
    if (std::filesystem::exists(path_)) throw InputError(path_, "cannot read the timings file");
    return;  // a new file
  }
  std::string line;
  int line_no = 0;
  auto where = [&] { return path_ + ":" + std::to_string(line_no); };
  bool header = false, with_prefix = true;
  while (std::getline(in, line)) {
    ++line_no;
    if (line_no == 1 && line != kMagic) throw InputError(where(), "not a pdsim real-kernel timings file");
    if (line.rfind("# model: ", 0) == 0) {
      const std::string m = line.substr(9);
      if (m != model_)
        throw InputError(where(), "timings measured for model " + m + ", this run's model is " + model_);
      continue;
    }
    if (line.rfind("# device: ", 0) == 0) {
      device_ = line.substr(10);
      continue;
    }
    if (line.rfind("#", 0) == 0) continue;
    if (!header) {
      if (line == kTotalsHeader)
        throw InputError(where(), "timings keyed by batch totals (pdsim before 2026-12-03, which ran a batch as "
                                  "equal sequences): measure again with a new file");
      with_prefix = line != kNoPrefixHeader;
      if (with_prefix && line != kHeader) throw InputError(where(), std::string("expected the header ") + kHeader);
      header = true;
      continue;
    }
    const std::size_t columns = with_prefix ? 11 : 10;
    const std::size_t c_decode = with_prefix ? 8 : 7, c_op = c_decode + 1, c_seconds = c_decode + 2;
    std::vector<std::string> cells;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) cells.push_back(cell);
    if (!line.empty() && line.back() == ',') cells.emplace_back();  // getline drops a trailing empty cell
    if (cells.size() != columns)
      throw InputError(where(), "expected " + std::to_string(columns) + " columns, got " + std::to_string(cells.size()));
    RealBatchKey key;
    double seconds = 0;
    try {
      std::size_t used = 0;
      auto integer = [&](const std::string& c) {
        const long long v = std::stoll(c, &used);
        if (used != c.size() || v < 0 || v > std::numeric_limits<int>::max()) throw std::invalid_argument(c);
        return static_cast<int>(v);
      };
      auto list = [&](const std::string& c) {
        std::vector<int> v;
        std::stringstream items(c);
        std::string item;
        while (items >> item) v.push_back(integer(item));
        return v;
      };
      auto sorted_lengths = [&](const std::string& c) {  // ascending, each >= 1
        std::vector<int> v = list(c);
        if (!std::is_sorted(v.begin(), v.end()) || (!v.empty() && v.front() < 1)) throw std::invalid_argument(c);
        return v;
      };
      key.tp = integer(cells[0]);
      key.logit_rows = integer(cells[5]);
      key.prefill_lens = sorted_lengths(cells[6]);
      key.prefill_prefix = with_prefix ? list(cells[7]) : std::vector<int>(key.prefill_lens.size(), 0);
      if (key.prefill_prefix.size() != key.prefill_lens.size()) throw std::invalid_argument(cells[7]);
      for (std::size_t i = 1; i < key.prefill_lens.size(); ++i)  // pairs ascending: prefixes too within equal lengths
        if (key.prefill_lens[i] == key.prefill_lens[i - 1] && key.prefill_prefix[i] < key.prefill_prefix[i - 1])
          throw std::invalid_argument(cells[7]);
      key.decode_ctx = sorted_lengths(cells[c_decode]);
      seconds = std::stod(cells[c_seconds], &used);
      if (used != cells[c_seconds].size() || !(seconds >= 0 && seconds < 1e6))
        throw std::invalid_argument(cells[c_seconds]);
    } catch (const std::exception&) {
      throw InputError(where(), "not a valid timings row: '" + line + "'");
    }
    if (key.tp < 1) throw InputError(where(), "tp must be >= 1");
    if (line.rfind(totals(key) + ",", 0) != 0)
      throw InputError(where(), "the totals (columns 1-6) do not match the sequence lists: '" + line + "'");
    file_keys_.insert(key);
    auto& t = entries_[key];
    if (cells[c_op] == "lm_head")
      t.lm_head_s = seconds;
    else
      t.per_layer_s[cells[c_op]] = seconds;
  }
  if (!header) throw InputError(path_, "no header line: not a pdsim real-kernel timings file");
  if (device_.empty()) throw InputError(path_, "no '# device:' line");
}

void RealTimings::bind_device(const std::string& device, const std::string& where) {
  if (device_.empty()) {
    device_ = device;
    return;
  }
  if (device_ != device)
    throw InputError(where, "timings file " + path_ + " was measured on \"" + device_ + "\", this run's backend is \"" +
                                device + "\"");
}

const RealBatchTiming* RealTimings::find(const RealBatchKey& key, bool* from_file) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  if (from_file) *from_file = file_keys_.count(key) > 0;
  return &it->second;
}

void RealTimings::add(const RealBatchKey& key, RealBatchTiming timing) {
  entries_[key] = std::move(timing);
  ++added_;
}

void RealTimings::save() const {
  if (added_ == 0) return;
  write_file_atomically(path_, [&](std::ostream& out) {
    out << kMagic << "\n# model: " << model_ << "\n# device: " << device_ << "\n" << kHeader << "\n";
    char buf[64];
    for (const auto& [k, t] : entries_) {
      const std::string shape =
          totals(k) + "," + join(k.prefill_lens) + "," + join(k.prefill_prefix) + "," + join(k.decode_ctx) + ",";
      for (const auto& [op, s] : t.per_layer_s) {
        std::snprintf(buf, sizeof buf, "%.17g", s);
        out << shape << op << "," << buf << "\n";
      }
      std::snprintf(buf, sizeof buf, "%.17g", t.lm_head_s);
      out << shape << "lm_head," << buf << "\n";
    }
  });
}

}  // namespace pdsim
