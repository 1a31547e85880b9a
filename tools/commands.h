// Subcommands of the pdsim CLI. Each registers its options on the app and
// returns the callback that runs it; the callback returns the exit code.
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "sim/core/error.h"

namespace pdsim::cli {

struct GlobalOptions {
  std::string data_dir;
};

using Command = std::function<int()>;

// The real-kernel options of `run` and `validate` (--memo, --timings) as
// scenario overrides. A CLI path is relative to the working directory, not
// to the scenario, so it is made absolute.
inline void add_real_kernel_overrides(std::vector<std::string>& overrides, bool memo, const std::string& timings) {
  if (memo) overrides.push_back("real_kernel.memo=true");
  if (!timings.empty())
    overrides.push_back("real_kernel.timings_file=" + std::filesystem::absolute(timings).string());
}

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
