#include "sim/config/json_object.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace pdsim {

namespace {
const char* type_name(const nlohmann::json& j) {
  if (j.is_number_integer() || j.is_number_unsigned()) return "integer";
  if (j.is_number_float()) return "number";
  return j.type_name();
}
std::string dump_short(const nlohmann::json& j) {
  std::string s = j.dump();
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}
}  // namespace

JsonObject::JsonObject(const nlohmann::json& json, std::string file, std::string path)
    : json_(json), file_(std::move(file)), path_(std::move(path)) {
  if (!json_.is_object())
    throw InputError(file_ + ": " + path_, std::string("expected an object, got ") + type_name(json_));
}

bool JsonObject::has(const std::string& key) {
  known_.insert(key);
  return json_.contains(key) && !json_.at(key).is_null();
}

const nlohmann::json& JsonObject::at(const std::string& key) {
  if (!has(key)) fail(key, "missing required key");
  return json_.at(key);
}

void JsonObject::fail(const std::string& key, const std::string& message) const {
  throw InputError(file_ + ": " + key_path(key), message);
}
void JsonObject::fail_here(const std::string& message) const {
  throw InputError(file_ + ": " + path_, message);
}

double JsonObject::number(const std::string& key) {
  const auto& j = at(key);
  if (!j.is_number()) fail(key, std::string("expected a number, got ") + type_name(j) + " " + dump_short(j));
  const double v = j.get<double>();
  if (!std::isfinite(v)) fail(key, "must be finite");
  return v;
}
double JsonObject::number(const std::string& key, double fallback) {
  return has(key) ? number(key) : fallback;
}

std::int64_t JsonObject::integer(const std::string& key) {
  const auto& j = at(key);
  if (j.is_number_integer() || j.is_number_unsigned()) {
    if (j.is_number_unsigned() && j.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
      fail(key, "integer out of range");
    return j.get<std::int64_t>();
  }
  if (j.is_number_float()) {
    const double v = j.get<double>();
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9e15) return static_cast<std::int64_t>(v);
    fail(key, "expected an integer, got " + dump_short(j));
  }
  fail(key, std::string("expected an integer, got ") + type_name(j) + " " + dump_short(j));
}
std::int64_t JsonObject::integer(const std::string& key, std::int64_t fallback) {
  return has(key) ? integer(key) : fallback;
}

std::string JsonObject::string(const std::string& key) {
  const auto& j = at(key);
  if (!j.is_string()) fail(key, std::string("expected a string, got ") + type_name(j) + " " + dump_short(j));
  return j.get<std::string>();
}
std::string JsonObject::string(const std::string& key, const std::string& fallback) {
  return has(key) ? string(key) : fallback;
}

std::string JsonObject::choice(const std::string& key, const std::vector<std::string>& allowed) {
  const std::string v = string(key);
  if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return v;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  std::string msg = "unknown value \"" + v + "\" (expected one of: " + list + ")";
  const std::string near = nearest(v, allowed);
  if (!near.empty()) msg += "; did you mean \"" + near + "\"?";
  fail(key, msg);
}
std::string JsonObject::choice(const std::string& key, const std::vector<std::string>& allowed,
                               const std::string& fallback) {
  return has(key) ? choice(key, allowed) : fallback;
}

bool JsonObject::boolean(const std::string& key, bool fallback) {
  if (!has(key)) return fallback;
  const auto& j = json_.at(key);
  if (!j.is_boolean()) fail(key, std::string("expected true or false, got ") + type_name(j));
  return j.get<bool>();
}

JsonObject JsonObject::object(const std::string& key) { return JsonObject(at(key), file_, key_path(key)); }

std::optional<JsonObject> JsonObject::optional_object(const std::string& key) {
  if (!has(key)) return std::nullopt;
  return JsonObject(json_.at(key), file_, key_path(key));
}

const nlohmann::json& JsonObject::raw(const std::string& key) { return at(key); }

double JsonObject::positive(const std::string& key) {
  const double v = number(key);
  if (!(v > 0)) fail(key, "must be > 0, got " + dump_short(json_.at(key)));
  return v;
}
double JsonObject::positive(const std::string& key, double fallback) {
  return has(key) ? positive(key) : fallback;
}
std::int64_t JsonObject::positive_integer(const std::string& key) {
  const std::int64_t v = integer(key);
  if (v < 1) fail(key, "must be >= 1, got " + std::to_string(v));
  return v;
}
std::int64_t JsonObject::positive_integer(const std::string& key, std::int64_t fallback) {
  return has(key) ? positive_integer(key) : fallback;
}

std::int64_t JsonObject::integer_in(const std::string& key, std::int64_t lo, std::int64_t hi) {
  const std::int64_t v = integer(key);
  if (v < lo || v > hi)
    fail(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(v));
  return v;
}
std::int64_t JsonObject::integer_in(const std::string& key, std::int64_t lo, std::int64_t hi, std::int64_t fallback) {
  return has(key) ? integer_in(key, lo, hi) : fallback;
}

double JsonObject::number_in(const std::string& key, double lo, double hi) {
  const double v = number(key);
  if (!(v >= lo && v <= hi)) fail(key, "must be in [" + dump_short(lo) + ", " + dump_short(hi) + "], got " + dump_short(json_.at(key)));
  return v;
}
double JsonObject::number_in(const std::string& key, double lo, double hi, double fallback) {
  return has(key) ? number_in(key, lo, hi) : fallback;
}

void JsonObject::finish() const {
  for (const auto& item : json_.items()) {
    const std::string& key = item.key();
    if (known_.count(key) || (!key.empty() && key[0] == '_')) continue;  // "_comment" keys are allowed
    std::vector<std::string> candidates(known_.begin(), known_.end());
    std::string msg = "unknown key \"" + key + "\"";
    const std::string near = nearest(key, candidates);
    if (!near.empty()) msg += "; did you mean \"" + near + "\"?";
    throw InputError(file_ + ": " + key_path(key), msg);
  }
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string nearest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

nlohmann::json parse_json_text(const std::string& text, const std::string& where) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // Convert the byte offset into line:column for the message.
    std::size_t line = 1, col = 1;
    const std::size_t upto = std::min<std::size_t>(e.byte > 0 ? e.byte - 1 : 0, text.size());
    for (std::size_t i = 0; i < upto; ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    std::string what = e.what();
    const auto pos = what.find("parse error");
    if (pos != std::string::npos) what = what.substr(pos);
    throw InputError(where + ":" + std::to_string(line) + ":" + std::to_string(col),
                     "malformed JSON: " + what);
  } catch (const nlohmann::json::exception& e) {  // e.g. a number out of range (1e400)
    throw InputError(where, std::string("invalid JSON: ") + e.what());
  }
}

nlohmann::json parse_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "cannot open file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw InputError(path, "cannot read file");
  return parse_json_text(buffer.str(), path);
}

void apply_override(nlohmann::json& root, const std::string& assignment, const std::string& file) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw InputError("--set " + assignment, "expected PATH=VALUE, e.g. cluster.prefill.instances=2");
  const std::string path = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    value = text;
  }
  nlohmann::json* node = &root;
  std::string walked = "$";
  std::size_t start = 0;
  for (;;) {
    const auto dot = path.find('.', start);
    const std::string key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (key.empty()) throw InputError("--set " + assignment, "empty path component");
    if (!node->is_object())
      throw InputError(file + ": " + walked, "--set " + path + ": not an object");
    if (dot == std::string::npos) {
      (*node)[key] = value;
      return;
    }
    if (!node->contains(key)) (*node)[key] = nlohmann::json::object();
    node = &(*node)[key];
    walked += "." + key;
    start = dot + 1;
  }
}

}  // namespace pdsim
