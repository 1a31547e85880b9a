// Output files written whole or not at all.
#pragma once
#include <filesystem>
#include <functional>
#include <ostream>
#include <string>

namespace pdsim {

// Writes `path` through `path.tmp` and a rename, so a reader (or a later run
// merging into the file) never sees half of it, and an interrupted or failed
// write leaves the previous file as it was. A write or rename that fails is an
// InputError naming the file; the temporary is removed.
void write_file_atomically(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write);
void write_file_atomically(const std::filesystem::path& path, const std::string& contents);

}  // namespace pdsim
