#include "sim/core/error.h"

namespace pdsim {

void check_failed(const char* file, int line, const char* expr, const std::string& detail) {
  std::string msg = std::string("internal check failed at ") + file + ":" + std::to_string(line) +
                    ": " + expr;
  if (!detail.empty()) msg += " (" + detail + ")";
  throw InternalError(msg);
}

}  // namespace pdsim
