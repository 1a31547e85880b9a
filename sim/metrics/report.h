// Reports of a finished run: summary.json (documented keys, seconds), the
// per-request CSV, and the terminal table.
#pragma once
#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "sim/cluster/simulator.h"
#include "sim/config/scenario.h"

namespace pdsim {

nlohmann::ordered_json make_summary(const Scenario& scenario, const SimResult& result);
void write_requests_csv(std::ostream& out, const SimResult& result);
// batches.csv (pdsim run --batch-log): the header, then one row per batch as on_batch reports it.
void write_batches_csv_header(std::ostream& out);
void write_batches_csv_row(std::ostream& out, const BatchRecord& batch);
std::string summary_table(const nlohmann::ordered_json& summary);

}  // namespace pdsim
