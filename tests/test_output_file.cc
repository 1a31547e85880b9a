#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "sim/core/error.h"
#include "sim/core/output_file.h"

using namespace pdsim;
namespace fs = std::filesystem;

namespace {
std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}
struct ScratchDir {
  fs::path path = fs::temp_directory_path() / "pdsim_test_output_file";
  ScratchDir() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() { fs::remove_all(path); }
};
}  // namespace

TEST_CASE("an output file is replaced whole, and a failed write leaves the previous one as it was") {
  ScratchDir dir;
  const fs::path file = dir.path / "table.csv";
  write_file_atomically(file, std::string("a,b\n1,2\n"));
  CHECK(read_all(file) == "a,b\n1,2\n");
  write_file_atomically(file, [](std::ostream& out) { out << "a,b\n3,4\n"; });
  CHECK(read_all(file) == "a,b\n3,4\n");
  CHECK_FALSE(fs::exists(file.string() + ".tmp"));

  // A writer that fails halfway (a profile run killed by an error) must not truncate the old rows.
  CHECK_THROWS_AS(write_file_atomically(file,
                                        [](std::ostream& out) {
                                          out << "a,b\n";
                                          throw std::runtime_error("measurement failed");
                                        }),
                  std::runtime_error);
  CHECK(read_all(file) == "a,b\n3,4\n");
  CHECK_FALSE(fs::exists(file.string() + ".tmp"));
}

TEST_CASE("an output file that cannot be written is an input error naming it") {
  ScratchDir dir;
  const fs::path missing_dir = dir.path / "no-such-dir" / "summary.json";
  CHECK_THROWS_WITH_AS(write_file_atomically(missing_dir, std::string("{}")),
                       doctest::Contains((missing_dir.string() + ".tmp: cannot write output file").c_str()), InputError);
  // The rename fails where a directory stands in the file's place; the temporary goes.
  const fs::path occupied = dir.path / "validation.json";
  fs::create_directories(occupied / "child");
  CHECK_THROWS_WITH_AS(write_file_atomically(occupied, std::string("{}")),
                       doctest::Contains((occupied.string() + ": cannot write output file").c_str()), InputError);
  CHECK_FALSE(fs::exists(occupied.string() + ".tmp"));
  CHECK(fs::is_directory(occupied));
}
