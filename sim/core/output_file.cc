#include "sim/core/output_file.h"

#include <fstream>
#include <system_error>

#include "sim/core/error.h"

namespace pdsim {

namespace fs = std::filesystem;

void write_file_atomically(const fs::path& path, const std::function<void(std::ostream&)>& write) {
  const fs::path tmp = path.string() + ".tmp";
  struct RemoveUnlessRenamed {
    const fs::path& tmp;
    bool renamed = false;
    ~RemoveUnlessRenamed() {
      std::error_code ignored;
      if (!renamed) fs::remove(tmp, ignored);
    }
  } guard{tmp};
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw InputError(tmp.string(), "cannot write output file");
    write(out);
    out.close();
    if (!out) throw InputError(tmp.string(), "cannot write output file");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw InputError(path.string(), "cannot write output file: " + ec.message());
  guard.renamed = true;
}

void write_file_atomically(const fs::path& path, const std::string& contents) {
  write_file_atomically(path, [&contents](std::ostream& out) { out << contents; });
}

}  // namespace pdsim
