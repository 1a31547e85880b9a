// Subcommands of the pdsim CLI. Each registers its options on the app and
// returns the callback that runs it; the callback returns the exit code.
#pragma once
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

namespace pdsim::cli {

struct GlobalOptions {
  std::string data_dir;
};

using Command = std::function<int()>;

Command add_run_command(CLI::App& app, const GlobalOptions& global);
Command add_cost_command(CLI::App& app, const GlobalOptions& global);
Command add_goodput_command(CLI::App& app, const GlobalOptions& global);
Command add_plan_command(CLI::App& app, const GlobalOptions& global);
Command add_profile_command(CLI::App& app, const GlobalOptions& global);
Command add_validate_command(CLI::App& app, const GlobalOptions& global);
Command add_compare_tables_command(CLI::App& app, const GlobalOptions& global);

}  // namespace pdsim::cli
