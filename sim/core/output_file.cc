#include "sim/core/output_file.h"

#include <system_error>
#include <utility>

#include "sim/core/error.h"

namespace pdsim {

namespace fs = std::filesystem;

AtomicOutputFile::AtomicOutputFile(fs::path path)
    : path_(std::move(path)), tmp_(path_.string() + ".tmp"), out_(tmp_, std::ios::binary) {
  if (!out_) throw InputError(tmp_.string(), "cannot write output file");
}

AtomicOutputFile::~AtomicOutputFile() {
  if (committed_) return;
  out_.close();
  std::error_code ignored;
  fs::remove(tmp_, ignored);
}

void AtomicOutputFile::commit() {
  out_.close();
  if (!out_) throw InputError(tmp_.string(), "cannot write output file");
  std::error_code ec;
  fs::rename(tmp_, path_, ec);
  if (ec) throw InputError(path_.string(), "cannot write output file: " + ec.message());
  committed_ = true;
}

void write_file_atomically(const fs::path& path, const std::function<void(std::ostream&)>& write) {
  AtomicOutputFile file(path);
  write(file.stream());
  file.commit();
}

void write_file_atomically(const fs::path& path, const std::string& contents) {
  write_file_atomically(path, [&contents](std::ostream& out) { out << contents; });
}

}  // namespace pdsim
