#include <charconv>
#include <cmath>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "sim/core/error.h"
#include "sim/workload/workload.h"

namespace pdsim {

namespace {

std::string where(const std::string& path, std::int64_t line) { return path + ":" + std::to_string(line); }

std::int32_t parse_count(const std::string& field, const std::string& path, std::int64_t line,
                         const char* column) {
  std::int64_t v = 0;
  const char* first = field.data();
  const char* last = field.data() + field.size();
  while (first < last && *first == ' ') ++first;
  while (last > first && (last[-1] == ' ' || last[-1] == '\r')) --last;
  const auto res = std::from_chars(first, last, v);
  if (res.ec != std::errc() || res.ptr != last)
    throw InputError(where(path, line), std::string(column) + ": expected a whole number, got \"" + field + "\"");
  if (v < 1 || v > INT32_MAX)
    throw InputError(where(path, line), std::string(column) + ": must be >= 1, got " + std::to_string(v));
  return static_cast<std::int32_t>(v);
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

int days_in_month(int y, int m) {
  static const int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

// "YYYY-MM-DD HH:MM:SS[.fraction]" -> seconds since the epoch.
double parse_timestamp(const std::string& s, const std::string& path, std::int64_t line) {
  int y, mo, d, h, mi;
  double sec;
  char tail = 0;
  if (std::sscanf(s.c_str(), "%d-%d-%d %d:%d:%lf%c", &y, &mo, &d, &h, &mi, &sec, &tail) != 6 || mo < 1 ||
      mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec >= 61)
    throw InputError(where(path, line), "TIMESTAMP: expected \"YYYY-MM-DD HH:MM:SS.fff\", got \"" + s + "\"");
  // days_from_civil would silently roll an impossible date into the next month.
  if (d > days_in_month(y, mo))
    throw InputError(where(path, line), "TIMESTAMP: no such date: \"" + s + "\" (" + std::to_string(y) + "-" +
                                            (mo < 10 ? "0" : "") + std::to_string(mo) + " has " +
                                            std::to_string(days_in_month(y, mo)) + " days)");
  return static_cast<double>(days_from_civil(y, mo, d)) * 86400.0 + h * 3600.0 + mi * 60.0 + sec;
}

std::vector<TraceRow> read_azure_csv(std::ifstream& in, const std::string& path, std::int64_t limit) {
  std::vector<TraceRow> rows;
  std::string line;
  std::int64_t line_no = 1;
  if (!std::getline(in, line)) throw InputError(path, "empty file (expected a CSV header)");
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.rfind("\xEF\xBB\xBF", 0) == 0) line = line.substr(3);
  if (line != "TIMESTAMP,ContextTokens,GeneratedTokens")
    throw InputError(where(path, 1), "expected header \"TIMESTAMP,ContextTokens,GeneratedTokens\", got \"" + line + "\"");
  double t0 = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const auto c1 = line.find(',');
    const auto c2 = c1 == std::string::npos ? c1 : line.find(',', c1 + 1);
    if (c2 == std::string::npos || line.find(',', c2 + 1) != std::string::npos)
      throw InputError(where(path, line_no), "expected 3 comma-separated fields, got \"" + line + "\"");
    TraceRow row;
    const double t = parse_timestamp(line.substr(0, c1), path, line_no);
    if (rows.empty()) t0 = t;
    row.arrival_s = t - t0;
    row.input_tokens = parse_count(line.substr(c1 + 1, c2 - c1 - 1), path, line_no, "ContextTokens");
    row.output_tokens = parse_count(line.substr(c2 + 1), path, line_no, "GeneratedTokens");
    rows.push_back(row);
    if (limit > 0 && static_cast<std::int64_t>(rows.size()) >= limit) break;
  }
  return rows;
}

std::vector<TraceRow> read_mooncake_jsonl(std::ifstream& in, const std::string& path, std::int64_t limit) {
  std::vector<TraceRow> rows;
  std::string line;
  std::int64_t line_no = 0;
  double t0 = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line == "\r") continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw InputError(where(path, line_no), std::string("malformed JSON line: ") + e.what());
    }
    auto field = [&](const char* key) -> double {
      if (!j.is_object() || !j.contains(key) || !j[key].is_number())
        throw InputError(where(path, line_no), std::string("missing or non-numeric \"") + key + "\"");
      return j[key].get<double>();
    };
    TraceRow row;
    const double t_ms = field("timestamp");
    if (!std::isfinite(t_ms) || t_ms < 0) throw InputError(where(path, line_no), "timestamp must be >= 0");
    if (rows.empty()) t0 = t_ms;
    row.arrival_s = (t_ms - t0) * 1e-3;
    for (const char* key : {"input_length", "output_length"}) {
      const double v = field(key);
      if (v < 1 || v > INT32_MAX || v != std::floor(v))
        throw InputError(where(path, line_no), std::string(key) + " must be a whole number >= 1");
      (key[0] == 'i' ? row.input_tokens : row.output_tokens) = static_cast<std::int32_t>(v);
    }
    rows.push_back(row);
    if (limit > 0 && static_cast<std::int64_t>(rows.size()) >= limit) break;
  }
  if (rows.empty()) throw InputError(path, "no requests in trace");
  return rows;
}

}  // namespace

std::vector<TraceRow> read_trace(const std::string& path, TraceFormat format, std::int64_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "cannot open trace file");
  std::vector<TraceRow> rows =
      format == TraceFormat::kAzureCsv ? read_azure_csv(in, path, limit) : read_mooncake_jsonl(in, path, limit);
  if (rows.empty()) throw InputError(path, "no requests in trace");
  for (std::size_t i = 1; i < rows.size(); ++i)
    if (rows[i].arrival_s < rows[i - 1].arrival_s)
      throw InputError(path, "arrival times go backwards at request " + std::to_string(i + 1));
  return rows;
}

}  // namespace pdsim
