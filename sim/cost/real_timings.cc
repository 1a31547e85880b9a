#include "sim/cost/real_timings.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "sim/core/error.h"
#include "sim/core/output_file.h"

namespace pdsim {

namespace {
constexpr const char* kHeader = "tp,prefill_seqs,prefill_tokens,decode_seqs,decode_kv_tokens,logit_rows,op,seconds";
constexpr const char* kMagic = "# pdsim real-kernel timings";
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
  bool header = false;
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
      if (line != kHeader) throw InputError(where(), std::string("expected the header ") + kHeader);
      header = true;
      continue;
    }
    std::vector<std::string> cells;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) cells.push_back(cell);
    if (cells.size() != 8) throw InputError(where(), "expected 8 columns, got " + std::to_string(cells.size()));
    RealBatchKey key;
    double seconds = 0;
    try {
      std::size_t used = 0;
      auto integer = [&](const std::string& c) {
        const long long v = std::stoll(c, &used);
        if (used != c.size() || v < 0) throw std::invalid_argument(c);
        return static_cast<std::int64_t>(v);
      };
      key = {static_cast<int>(integer(cells[0])), integer(cells[1]), integer(cells[2]), integer(cells[3]),
             integer(cells[4]), integer(cells[5])};
      seconds = std::stod(cells[7], &used);
      if (used != cells[7].size() || !(seconds >= 0 && seconds < 1e6)) throw std::invalid_argument(cells[7]);
    } catch (const std::exception&) {
      throw InputError(where(), "not a valid timings row: '" + line + "'");
    }
    if (std::get<0>(key) < 1) throw InputError(where(), "tp must be >= 1");
    file_keys_.insert(key);
    auto& t = entries_[key];
    if (cells[6] == "lm_head")
      t.lm_head_s = seconds;
    else
      t.per_layer_s[cells[6]] = seconds;
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
      const std::string prefix = std::to_string(std::get<0>(k)) + "," + std::to_string(std::get<1>(k)) + "," +
                                 std::to_string(std::get<2>(k)) + "," + std::to_string(std::get<3>(k)) + "," +
                                 std::to_string(std::get<4>(k)) + "," + std::to_string(std::get<5>(k)) + ",";
      for (const auto& [op, s] : t.per_layer_s) {
        std::snprintf(buf, sizeof buf, "%.17g", s);
        out << prefix << op << "," << buf << "\n";
      }
      std::snprintf(buf, sizeof buf, "%.17g", t.lm_head_s);
      out << prefix << "lm_head," << buf << "\n";
    }
  });
}

}  // namespace pdsim
