// Strict, path-aware reader over a parsed JSON object.
//
// Every key the code asks about (present or not) becomes "known"; finish()
// then rejects any other key in the object, suggesting the nearest known one.
// Every error is an InputError naming the file and the JSON path, e.g.
//   scenarios/x.json: $.cluster.prefill.tp: must be >= 1, got 0
// nlohmann exceptions never escape: type mismatches are reported here.
#pragma once
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/core/error.h"

namespace pdsim {

class JsonObject {
 public:
  // REQUIRES: `json` outlives this object. Throws InputError if not an object.
  JsonObject(const nlohmann::json& json, std::string file, std::string path = "$");

  const std::string& file() const { return file_; }
  const std::string& path() const { return path_; }
  std::string key_path(const std::string& key) const { return path_ + "." + key; }

  bool has(const std::string& key);  // marks key known

  double number(const std::string& key);
  double number(const std::string& key, double fallback);
  std::int64_t integer(const std::string& key);
  std::int64_t integer(const std::string& key, std::int64_t fallback);
  std::string string(const std::string& key);
  std::string string(const std::string& key, const std::string& fallback);
  // A string that must be one of `allowed`.
  std::string choice(const std::string& key, const std::vector<std::string>& allowed);
  std::string choice(const std::string& key, const std::vector<std::string>& allowed,
                     const std::string& fallback);
  bool boolean(const std::string& key, bool fallback);
  JsonObject object(const std::string& key);
  std::optional<JsonObject> optional_object(const std::string& key);
  const nlohmann::json& raw(const std::string& key);  // any type; required

  // Range helpers: throw InputError at key's path when violated.
  double positive(const std::string& key);
  double positive(const std::string& key, double fallback);
  std::int64_t positive_integer(const std::string& key);
  std::int64_t positive_integer(const std::string& key, std::int64_t fallback);

  // Values that must lie in [lo, hi] (inclusive); checked before any narrowing.
  std::int64_t integer_in(const std::string& key, std::int64_t lo, std::int64_t hi);
  std::int64_t integer_in(const std::string& key, std::int64_t lo, std::int64_t hi, std::int64_t fallback);
  double number_in(const std::string& key, double lo, double hi);
  double number_in(const std::string& key, double lo, double hi, double fallback);

  [[noreturn]] void fail(const std::string& key, const std::string& message) const;
  [[noreturn]] void fail_here(const std::string& message) const;

  // Rejects keys that no accessor asked about.
  void finish() const;

 private:
  const nlohmann::json& at(const std::string& key);
  const nlohmann::json& json_;
  std::string file_;
  std::string path_;
  std::set<std::string> known_;
};

// Levenshtein distance; used for "did you mean" suggestions.
std::size_t edit_distance(const std::string& a, const std::string& b);
// Nearest candidate within a small distance, or "" if none is close.
std::string nearest(const std::string& word, const std::vector<std::string>& candidates);

// Parses a JSON file; syntax errors become InputError with line and column.
nlohmann::json parse_json_file(const std::string& path);
nlohmann::json parse_json_text(const std::string& text, const std::string& where);

// Applies a "--set a.b.c=value" override. value is parsed as JSON when it is
// valid JSON, else taken as a string. Intermediate objects must exist.
void apply_override(nlohmann::json& root, const std::string& assignment, const std::string& file);

}  // namespace pdsim
