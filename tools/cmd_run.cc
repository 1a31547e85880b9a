#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <optional>
#include <iostream>

#include "sim/cluster/simulator.h"
#include "sim/config/scenario.h"
#include "sim/core/error.h"
#include "sim/core/output_file.h"
#include "sim/metrics/report.h"
#include "tools/commands.h"

namespace pdsim::cli {

namespace fs = std::filesystem;

namespace {

struct RunOptions {
  ScenarioArgs in;
  RealKernelArgs real;
  std::string out_dir;
  bool quiet = false;
  bool batch_log = false;  // write batches.csv
};

int run(const RunOptions& o, const GlobalOptions& g) {
  LoadOptions load = o.in.load_options(g);
  o.real.add_overrides(load.overrides);
  const fs::path out_dir = o.out_dir.empty() ? fs::path("out") / fs::path(o.in.scenario).stem() : fs::path(o.out_dir);
  // Stale results from an earlier run must not pass for this run's if it fails.
  for (const char* name : {"summary.json", "requests.csv", "batches.csv"}) remove_stale_output(out_dir / name);

  const Scenario scenario = load_scenario(o.in.scenario, load);
  const std::vector<RequestSpec> requests = generate_requests(scenario.workload, scenario.seed);
  create_output_dir(out_dir);

  SimOptions sim_options;
  // batches.csv streams to a temporary file during the run (a long run has
  // millions of batches) and is renamed only once the run has completed.
  std::optional<AtomicOutputFile> batches;
  if (o.batch_log) {
    std::ostream& out = batches.emplace(out_dir / "batches.csv").stream();
    write_batches_csv_header(out);
    sim_options.on_batch = [&out](const BatchRecord& b) { write_batches_csv_row(out, b); };
  }
  const bool show_progress = !o.quiet && isatty(STDERR_FILENO);
  if (show_progress)
    sim_options.progress = [](double done) { std::fprintf(stderr, "\rsimulating: %5.1f%% of requests done", 100 * done); };
  const SimResult result = simulate(scenario, requests, sim_options);
  if (show_progress) std::fprintf(stderr, "\r%60s\r", "");

  const auto summary = make_summary(scenario, result);
  if (batches) batches->commit();
  write_file_atomically(out_dir / "requests.csv", [&](std::ostream& out) { write_requests_csv(out, result); });
  // summary.json last: its presence marks a complete run.
  write_file_atomically(out_dir / "summary.json", [&](std::ostream& out) { out << summary.dump(2) << "\n"; });
  if (!o.quiet)
    std::cout << summary_table(summary) << "results: " << (out_dir / "summary.json").string() << ", "
              << (out_dir / "requests.csv").string()
              << (o.batch_log ? ", " + (out_dir / "batches.csv").string() : std::string()) << "\n";
  return 0;
}

}  // namespace

Command add_run_command(CLI::App& app, const GlobalOptions& global) {
  auto o = std::make_shared<RunOptions>();
  o->in.add_to(app);
  app.add_option("--out", o->out_dir, "output directory (default: out/<scenario name>)");
  app.add_flag("--quiet", o->quiet, "print nothing on success");
  o->real.add_to(app);
  app.add_flag("--batch-log", o->batch_log,
               "also write batches.csv: every prefill batch, decode step or colocated iteration with its shape");
  return [o, &global] { return run(*o, global); };
}

}  // namespace pdsim::cli
