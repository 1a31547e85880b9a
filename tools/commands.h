// Subcommands of the pdsim CLI. Each registers its options on the app and
// returns the callback that runs it; the callback returns the exit code.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "sim/config/scenario.h"
#include "sim/core/error.h"

namespace pdsim::cli {

struct GlobalOptions {
  std::string data_dir;
};

using Command = std::function<int()>;

// The scenario a command reads and what changes it on load: SCENARIO,
// --seed, --set (run, goodput, validate).
struct ScenarioArgs {
  std::string scenario;
  std::int64_t seed = -1;
  std::vector<std::string> overrides;

  void add_to(CLI::App& app, const std::string& scenario_help = "scenario JSON file") {
    app.add_option("scenario", scenario, scenario_help)->required();
    app.add_option("--seed", seed, "override the scenario's seed")->check(CLI::NonNegativeNumber);
    app.add_option("--set", overrides, "override a scenario value: PATH=VALUE (e.g. cluster.decode.instances=2)");
  }
  LoadOptions load_options(const GlobalOptions& global) const {
    LoadOptions load;
    load.data_dir = global.data_dir;
    load.overrides = overrides;
    load.seed_override = seed;
    return load;
  }
};

// The real cost model's options (run, validate): --memo, --timings.
struct RealKernelArgs {
  bool memo = false;    // reuse identical batch shapes' measured times
  std::string timings;  // timings file to replay and extend

  void add_to(CLI::App& app) {
    app.add_flag("--memo", memo, "cost model real: reuse the measured time of identical batch shapes");
    app.add_option("--timings", timings,
                   "cost model real: timings file; shapes found there are replayed, the rest measured and added");
  }
  // As scenario overrides. A CLI path is relative to the working directory,
  // not to the scenario, so it is made absolute.
  void add_overrides(std::vector<std::string>& overrides) const {
    if (memo) overrides.push_back("real_kernel.memo=true");
    if (!timings.empty())
      overrides.push_back("real_kernel.timings_file=" + std::filesystem::absolute(timings).string());
  }
};

// Removes an earlier run's output file so it cannot pass for this run's. A
// path whose directory does not exist (or is not a directory) holds nothing
// stale: creating the directory reports that later, as an input error; a
// stale file that cannot be removed is an input error here.
inline void remove_stale_output(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory)
    throw InputError(path.string(), "cannot remove an earlier run's output: " + ec.message());
}

// Creates an output directory and its parents, before the command's work so
// a bad --out fails fast; an input error naming it when it cannot.
inline void create_output_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw InputError(dir.string(), "cannot create output directory: " + ec.message());
}

Command add_run_command(CLI::App& app, const GlobalOptions& global);
Command add_cost_command(CLI::App& app, const GlobalOptions& global);
Command add_goodput_command(CLI::App& app, const GlobalOptions& global);
Command add_plan_command(CLI::App& app, const GlobalOptions& global);
Command add_profile_command(CLI::App& app, const GlobalOptions& global);
Command add_validate_command(CLI::App& app, const GlobalOptions& global);
Command add_compare_tables_command(CLI::App& app, const GlobalOptions& global);

}  // namespace pdsim::cli
