// Subcommands of the pdsim CLI. Each registers its options on the app and
// returns the callback that runs it; the callback returns the exit code.
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

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

Command add_run_command(CLI::App& app, const GlobalOptions& global);
Command add_cost_command(CLI::App& app, const GlobalOptions& global);
Command add_goodput_command(CLI::App& app, const GlobalOptions& global);
Command add_plan_command(CLI::App& app, const GlobalOptions& global);
Command add_profile_command(CLI::App& app, const GlobalOptions& global);
Command add_validate_command(CLI::App& app, const GlobalOptions& global);
Command add_compare_tables_command(CLI::App& app, const GlobalOptions& global);

}  // namespace pdsim::cli
