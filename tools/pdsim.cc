// pdsim: simulate prefill/decode-disaggregated and colocated LLM serving.
// Exit codes: 0 success, 2 invalid input (scenario, CLI, trace, profile),
// 1 internal error (a broken invariant: a bug in pdsim).
#include <iostream>
#include <map>

#include "kernels/device_info.h"
#include "sim/config/scenario.h"
#include "sim/core/error.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  using namespace pdsim;
  CLI::App app{"pdsim: discrete-event simulator of PD-disaggregated LLM serving"};
  app.require_subcommand(1);
  cli::GlobalOptions global;
  global.data_dir = default_data_dir();
  app.add_option("--data-dir", global.data_dir, "directory holding profiles/ (default: the source tree)");

  std::map<CLI::App*, cli::Command> commands;
  auto* run = app.add_subcommand("run", "simulate a scenario; write summary.json and requests.csv");
  commands[run] = cli::add_run_command(*run, global);
  auto* cost = app.add_subcommand("cost", "price one batch with a cost model; per-op breakdown");
  commands[cost] = cli::add_cost_command(*cost, global);
  auto* goodput = app.add_subcommand("goodput", "highest arrival rate meeting an SLO attainment target");
  commands[goodput] = cli::add_goodput_command(*goodput, global);
  auto* plan = app.add_subcommand("plan", "cheapest prefill:decode configuration meeting a target rate under the SLO");
  commands[plan] = cli::add_plan_command(*plan, global);
  auto* profile = app.add_subcommand("profile", "measure a kernel backend on a model's shapes; write tables and a device profile");
  commands[profile] = cli::add_profile_command(*profile, global);
  auto* validate = app.add_subcommand("validate", "run a scenario with roofline, profiled and real timings; compare");
  commands[validate] = cli::add_validate_command(*validate, global);
  auto* compare = app.add_subcommand("compare-tables", "measured kernel tables side by side (ours vs another set, same shapes)");
  commands[compare] = cli::add_compare_tables_command(*compare, global);
  auto* devices = app.add_subcommand("devices", "list the CUDA devices this build can use");
  commands[devices] = [] {
    std::string why;
    const auto list = kernels::cuda_devices(&why);
    if (list.empty()) std::cout << "no CUDA devices: " << why << "\n";
    if (kernels::built_with_cuda()) {  // cuBLAS is loaded on first use: say whether it would
      std::string blas;
      std::cout << (kernels::cublas_loads(&blas) ? "" : "cuBLAS does not load: ") << blas << "\n";
    }
    for (const auto& d : list)
      std::cout << d.name << ", " << d.memory_gib << " GiB, " << d.sm_count << " SMs, sm_" << d.compute_capability
                << "\n";
    return 0;
  };

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "pdsim: " << e.what() << " (see pdsim --help)\n";
    return 2;
  }
  try {
    for (auto& [sub, command] : commands)
      if (sub->parsed()) return command();
    return 2;
  } catch (const InputError& e) {
    std::cerr << "pdsim: error: " << e.what() << "\n";
    return 2;
  } catch (const InternalError& e) {
    std::cerr << "pdsim: internal error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "pdsim: internal error: " << e.what() << "\n";
    return 1;
  }
}
