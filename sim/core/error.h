// Errors by layer:
//  - InputError: the user's input (scenario JSON, CLI, traces, profiles) is
//    wrong. Carries file and JSON path (or line) so the CLI prints one line and
//    exits 2.
//  - PDSIM_CHECK: a broken internal invariant. Always on (release builds too);
//    throws InternalError with file:line so the CLI exits 1.
#pragma once
#include <stdexcept>
#include <string>

namespace pdsim {

class InputError : public std::runtime_error {
 public:
  // where: "file" or "file: $.json.path" or "file:line"; may be empty.
  InputError(const std::string& where, const std::string& message)
      : std::runtime_error(where.empty() ? message : where + ": " + message) {}
};

class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

[[noreturn]] void check_failed(const char* file, int line, const char* expr, const std::string& detail);

}  // namespace pdsim

#define PDSIM_CHECK(cond, detail)                                        \
  do {                                                                   \
    if (!(cond)) ::pdsim::check_failed(__FILE__, __LINE__, #cond, (detail)); \
  } while (0)
