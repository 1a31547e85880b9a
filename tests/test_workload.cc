#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "sim/core/error.h"
#include "sim/core/rng.h"
#include "sim/workload/workload.h"

using namespace pdsim;

namespace {
struct Moments {
  double mean = 0, cv = 0;
};
template <class F>
Moments moments(int n, F draw) {
  double s = 0, s2 = 0;
  for (int i = 0; i < n; ++i) {
    const double x = draw();
    s += x;
    s2 += x * x;
  }
  const double mean = s / n;
  return {mean, std::sqrt(s2 / n - mean * mean) / mean};
}

WorkloadConfig open_loop(ArrivalConfig::Process p, double rate, double cv = 1) {
  WorkloadConfig w;
  w.arrival = ArrivalConfig{p, rate, cv, 0};
  w.num_requests = 200000;
  w.input.kind = LengthDist::Kind::kFixed;
  w.input.value = 100;
  w.output = w.input;
  return w;
}

std::string write_temp(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / ("pdsim_test_" + name);
  std::ofstream(path) << text;
  return path.string();
}

std::string error_of(const std::string& path, TraceFormat f) {
  try {
    read_trace(path, f);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("arrival processes have the configured rate and variability") {
  for (auto [process, cv] : {std::pair{ArrivalConfig::Process::kPoisson, 1.0},
                             std::pair{ArrivalConfig::Process::kGamma, 3.0},
                             std::pair{ArrivalConfig::Process::kGamma, 0.5},
                             std::pair{ArrivalConfig::Process::kConstant, 0.0}}) {
    const auto reqs = generate_requests(open_loop(process, 20.0, cv == 0 ? 1 : cv), 3);
    std::vector<double> gaps;
    for (std::size_t i = 1; i < reqs.size(); ++i)
      gaps.push_back(ns_to_seconds(reqs[i].arrival_ns - reqs[i - 1].arrival_ns));
    std::size_t i = 0;
    const Moments m = moments(static_cast<int>(gaps.size()), [&] { return gaps[i++]; });
    CAPTURE(cv);
    CHECK(m.mean == doctest::Approx(0.05).epsilon(0.02));
    CHECK(m.cv == doctest::Approx(cv).epsilon(0.05).scale(1));
  }
}

TEST_CASE("lognormal lengths have the configured mean and cv - clipping holds") {
  Rng rng(11, 2);
  LengthDist d;
  d.kind = LengthDist::Kind::kLognormal;
  d.mean = 1024;
  d.cv = 0.5;
  d.min = 1;
  d.max = 1 << 30;
  const Moments m = moments(200000, [&] { return static_cast<double>(draw_length(d, rng)); });
  CHECK(m.mean == doctest::Approx(1024).epsilon(0.01));
  CHECK(m.cv == doctest::Approx(0.5).epsilon(0.02));
  d.min = 900;
  d.max = 1100;
  for (int i = 0; i < 10000; ++i) {
    const auto v = draw_length(d, rng);
    REQUIRE(v >= 900);
    REQUIRE(v <= 1100);
  }
}

TEST_CASE("uniform lengths cover [min and max] inclusive") {
  Rng rng(1, 2);
  LengthDist d;
  d.kind = LengthDist::Kind::kUniform;
  d.min = 3;
  d.max = 5;
  std::vector<int> seen(7, 0);
  for (int i = 0; i < 30000; ++i) ++seen[draw_length(d, rng)];
  CHECK(seen[2] == 0);
  CHECK(seen[6] == 0);
  for (int v = 3; v <= 5; ++v) CHECK(seen[v] == doctest::Approx(10000).epsilon(0.05));
}

TEST_CASE("same seed and same requests - different seed and different requests") {
  WorkloadConfig w = open_loop(ArrivalConfig::Process::kPoisson, 5);
  w.num_requests = 1000;
  w.input.kind = LengthDist::Kind::kLognormal;
  w.input.mean = 500;
  w.input.cv = 1;
  const auto a = generate_requests(w, 42), b = generate_requests(w, 42), c = generate_requests(w, 43);
  bool same = true, differ = false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    same &= a[i].arrival_ns == b[i].arrival_ns && a[i].input_tokens == b[i].input_tokens;
    differ |= a[i].arrival_ns != c[i].arrival_ns;
  }
  CHECK(same);
  CHECK(differ);
}

TEST_CASE("Azure CSV trace: shipped copy reads fully - times relative to the first row") {
  const std::string path = std::string(PDSIM_SOURCE_DIR) + "/scenarios/traces/AzureLLMInferenceTrace_conv.csv";
  const auto rows = read_trace(path, TraceFormat::kAzureCsv);
  CHECK(rows.size() == 19366);  // data rows listed in the trace's SOURCE.md
  CHECK(rows.front().arrival_s == 0.0);
  CHECK(rows.front().input_tokens == 374);
  CHECK(rows.front().output_tokens == 44);
  // Second row: 18:15:50.9951690 - 18:15:46.6805900
  CHECK(rows[1].arrival_s == doctest::Approx(4.314579).epsilon(1e-6));
  CHECK(read_trace(path, TraceFormat::kAzureCsv, 10).size() == 10);
}

TEST_CASE("Mooncake JSONL trace: shipped copy reads fully - milliseconds to seconds") {
  const std::string path = std::string(PDSIM_SOURCE_DIR) + "/scenarios/traces/conversation_trace.jsonl";
  const auto rows = read_trace(path, TraceFormat::kMooncakeJsonl);
  CHECK(rows.size() == 12031);
  CHECK(rows.front().input_tokens == 6758);
  CHECK(rows.front().output_tokens == 500);
  CHECK(rows.back().arrival_s == doctest::Approx(3536.999));
}

TEST_CASE("garbled trace rows are errors naming file:line") {
  const auto csv = write_temp("bad.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,10,5\n2023-11-16 18:15:47.00,abc,5\n");
  CHECK(error_of(csv, TraceFormat::kAzureCsv).find("pdsim_test_bad.csv:3: ContextTokens") != std::string::npos);
  const auto header = write_temp("header.csv", "time,in,out\n");
  CHECK(error_of(header, TraceFormat::kAzureCsv).find(":1: expected header") != std::string::npos);
  const auto fields = write_temp("fields.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,10\n");
  CHECK(error_of(fields, TraceFormat::kAzureCsv).find(":2: expected 3") != std::string::npos);
  const auto zero = write_temp("zero.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,10,0\n");
  CHECK(error_of(zero, TraceFormat::kAzureCsv).find(":2: GeneratedTokens: must be >= 1") != std::string::npos);
  const auto jsonl = write_temp("bad.jsonl", "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 2}\n{\"timestamp\": 3, \"input_length\": 5\n");
  CHECK(error_of(jsonl, TraceFormat::kMooncakeJsonl).find("pdsim_test_bad.jsonl:2: malformed JSON") != std::string::npos);
  const auto missing = write_temp("missing.jsonl", "{\"timestamp\": 0, \"input_length\": 5}\n");
  CHECK(error_of(missing, TraceFormat::kMooncakeJsonl).find(":1: missing or non-numeric \"output_length\"") != std::string::npos);
  CHECK(error_of("/nonexistent/trace.csv", TraceFormat::kAzureCsv).find("cannot open") != std::string::npos);
}

TEST_CASE("impossible Azure trace dates are errors naming file:line") {
  auto trace = [](const std::string& name, const std::string& date) {
    return write_temp(name, "TIMESTAMP,ContextTokens,GeneratedTokens\n1900-01-01 00:00:00.0,10,5\n" + date +
                                " 00:00:01.0,10,5\n");
  };
  for (const std::string bad : {"2023-02-31", "2023-04-31", "2023-02-29", "1900-02-29", "2023-06-31"}) {
    CAPTURE(bad);
    const std::string err = error_of(trace("baddate.csv", bad), TraceFormat::kAzureCsv);
    CHECK(err.find("pdsim_test_baddate.csv:3: TIMESTAMP: no such date: \"" + bad) != std::string::npos);
  }
  // Leap days that exist, and month ends, read normally.
  for (const std::string good : {"2024-02-29", "2000-02-29", "2023-04-30", "2023-12-31"}) {
    CAPTURE(good);
    CHECK(error_of(trace("gooddate.csv", good), TraceFormat::kAzureCsv) == "");
  }
  // 2024-02-29 is the day after 2024-02-28.
  const auto rows = read_trace(write_temp("leap.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                                                       "2024-02-28 00:00:00.0,10,5\n2024-02-29 00:00:00.0,10,5\n"
                                                       "2024-03-01 00:00:00.0,10,5\n"),
                               TraceFormat::kAzureCsv);
  CHECK(rows[1].arrival_s == 86400.0);
  CHECK(rows[2].arrival_s == 2 * 86400.0);
}
