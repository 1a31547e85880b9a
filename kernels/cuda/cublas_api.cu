#include "kernels/cuda/cublas_api.h"

#include <dlfcn.h>

#include <type_traits>

#define PDSIM_STR2(x) #x
#define PDSIM_STR(x) PDSIM_STR2(x)

namespace pdsim::kernels::cuda {

namespace {
struct Loaded {
  CublasApi api{};
  bool ok = false;
  std::string error;
  std::string path;  // the name that loaded
};

Loaded load() {
  Loaded l;
  void* lib = nullptr;
  // The configured library first (its full path), then the soname the
  // headers were built for, wherever the loader finds it.
  for (const char* name : {PDSIM_CUBLAS_LIBRARY, "libcublas.so." PDSIM_STR(CUBLAS_VER_MAJOR)}) {
    lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (lib) {
      l.path = name;
      break;
    }
    const char* e = dlerror();
    l.error += std::string(l.error.empty() ? "" : "; ") + (e ? e : name);
  }
  if (!lib) {
    l.error = "cannot load cuBLAS: " + l.error;
    return l;
  }
  auto sym = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
    if (!fn) l.error += std::string(l.error.empty() ? "cuBLAS lacks " : ", ") + name;
  };
  l.error.clear();
  sym(l.api.create, "cublasCreate_v2");
  sym(l.api.destroy, "cublasDestroy_v2");
  sym(l.api.set_stream, "cublasSetStream_v2");
  sym(l.api.set_workspace, "cublasSetWorkspace_v2");
  sym(l.api.gemm_ex, "cublasGemmEx");
  sym(l.api.status_string, "cublasGetStatusString");
  l.ok = l.error.empty();
  return l;  // the library stays loaded for the process
}

const Loaded& loaded() {
  static const Loaded l = load();
  return l;
}
}  // namespace

const CublasApi* cublas_api(std::string* why) {
  if (!loaded().ok && why) *why = loaded().error;
  return loaded().ok ? &loaded().api : nullptr;
}

std::string cublas_loaded_path() { return loaded().path; }

}  // namespace pdsim::kernels::cuda

namespace pdsim::kernels {
bool cublas_loads_impl(std::string* why) {  // kernels/device_info.h
  std::string error;
  const bool ok = cuda::cublas_api(&error) != nullptr;
  if (why) {
    if (!ok) *why = error;
    else *why = std::string("cuBLAS ") + PDSIM_STR(CUBLAS_VER_MAJOR) + "." + PDSIM_STR(CUBLAS_VER_MINOR) +
                " headers; loaded " + cuda::cublas_loaded_path();
  }
  return ok;
}
}  // namespace pdsim::kernels
