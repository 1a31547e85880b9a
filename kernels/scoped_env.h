// ScopedEnv: sets an environment variable for its lifetime, then restores
// what was there. Tests and benchmarks use it to pick the CUDA backend's
// prefill kernel (PDSIM_ATTENTION_KERNEL). Not thread-safe (setenv is not).
#pragma once
#include <cstdlib>
#include <string>

namespace pdsim::kernels {

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    had_ = old != nullptr;
    if (had_) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had_)
      setenv(name_.c_str(), old_.c_str(), 1);
    else
      unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_, old_;
  bool had_ = false;
};

}  // namespace pdsim::kernels
