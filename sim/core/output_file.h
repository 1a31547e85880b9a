// Output files written whole or not at all.
#pragma once
#include <filesystem>
#include <fstream>
#include <functional>
#include <ostream>
#include <string>

namespace pdsim {

// A file written through `path.tmp` that appears under `path` only on
// commit(), so a reader (or a later run merging into the file) never sees half
// of it and a failed write leaves the previous file as it was. Destroyed
// uncommitted (an error, an exception), it removes the temporary. Failures to
// open, write or rename are InputErrors naming the file.
class AtomicOutputFile {
 public:
  explicit AtomicOutputFile(std::filesystem::path path);
  ~AtomicOutputFile();
  AtomicOutputFile(const AtomicOutputFile&) = delete;
  AtomicOutputFile& operator=(const AtomicOutputFile&) = delete;

  std::ostream& stream() { return out_; }
  void commit();

 private:
  std::filesystem::path path_, tmp_;
  std::ofstream out_;
  bool committed_ = false;
};

// One whole file at once through an AtomicOutputFile.
void write_file_atomically(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write);
void write_file_atomically(const std::filesystem::path& path, const std::string& contents);

}  // namespace pdsim
