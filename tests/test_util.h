// Shared helpers for the tests: build scenarios from JSON text and run them.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "sim/cluster/simulator.h"
#include "sim/config/scenario.h"
#include "sim/metrics/report.h"

namespace pdsim::test {

inline LoadOptions load_options() {
  LoadOptions o;
  o.data_dir = PDSIM_SOURCE_DIR;
  return o;
}

// A small valid disaggregated scenario; tests patch what they need.
inline nlohmann::json base_scenario() {
  return nlohmann::json::parse(R"({
    "name": "test", "seed": 7, "model": "llama-3.1-8b",
    "workload": {"arrival": {"process": "poisson", "rate_rps": 2.0}, "num_requests": 200,
                 "input_tokens": {"dist": "fixed", "value": 512},
                 "output_tokens": {"dist": "fixed", "value": 16}},
    "cluster": {"mode": "disaggregated",
                "prefill": {"gpu": "h100-sxm", "instances": 1, "tp": 1, "max_batch_tokens": 8192, "max_batch_requests": 16},
                "decode": {"gpu": "h100-sxm", "instances": 1, "tp": 1, "max_batch_size": 128},
                "kv_transfer": {"bandwidth_gbps": 400, "latency_us": 5, "layerwise": false},
                "router": "round_robin"},
    "cost_model": "roofline",
    "slo": {"ttft_s": 0.4, "ttft_percentile": 90, "tpot_s": 0.04, "tpot_percentile": 90}})");
}

inline Scenario make_scenario(const nlohmann::json& doc) { return parse_scenario(doc, "test.json", load_options()); }

inline SimResult run(const Scenario& s) { return simulate(s, generate_requests(s.workload, s.seed)); }

}  // namespace pdsim::test
