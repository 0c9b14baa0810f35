// Shared plumbing of the libFuzzer targets: most k2forge readers take a path (they mmap or hand
// it to HDF5), so each input is written to a scratch file first. The scratch directory is per
// process and lives on /dev/shm when present so the file round trip stays cheap.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace k2f::fuzz {

inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    namespace fs = std::filesystem;
    const fs::path root = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    auto path = root / ("k2f-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(path);
    std::atexit([] { std::error_code ignored; std::filesystem::remove_all(scratch_dir(), ignored); });
    return path;
  }();
  return dir;
}

// Writes the bytes to scratch_dir()/name (replacing it) and returns the full path.
inline std::string write_scratch_file(const std::string& name, const uint8_t* data, size_t size) {
  const auto path = scratch_dir() / name;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path.string();
}

inline std::string write_scratch_file(const std::string& name, const std::string& text) {
  return write_scratch_file(name, reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

// The directory this binary was built from (assets/ holds the tokenizer the targets use).
inline std::string source_dir() { return K2F_SOURCE_DIR; }

}  // namespace k2f::fuzz
