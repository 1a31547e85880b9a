// Always-on invariant check for the kernels library, throwing the same
// pdsim::InternalError as PDSIM_CHECK (header-only, so pdsim_kernels needs no
// link dependency on pdsim_sim: sim depends on kernels, not the reverse).
#pragma once
#include <string>

#include "sim/core/error.h"

namespace pdsim::kernels {
[[noreturn]] inline void kcheck_failed(const char* file, int line, const char* expr, const std::string& detail) {
  std::string msg = std::string("internal check failed at ") + file + ":" + std::to_string(line) + ": " + expr;
  if (!detail.empty()) msg += " (" + detail + ")";
  throw InternalError(msg);
}
}  // namespace pdsim::kernels

#define PDSIM_KCHECK(cond, detail)                                                      \
  do {                                                                                 \
    if (!(cond)) ::pdsim::kernels::kcheck_failed(__FILE__, __LINE__, #cond, (detail)); \
  } while (0)
