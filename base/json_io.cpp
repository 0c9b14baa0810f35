#include "base/json_io.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/error.h"

namespace k2f {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), path, ": cannot open for reading");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

Json read_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    fail(path, ": invalid JSON: ", e.what());
  }
}

void write_text_file_atomic(const std::string& path, const std::string& text) {
  const std::string temporary = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    check(out.good(), temporary, ": cannot open for writing (", std::strerror(errno), ")");
    out << text;
    out.flush();
    if (!out.good()) {
      out.close();
      std::remove(temporary.c_str());
      fail(temporary, ": write failed (disk full or no permission?)");
    }
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::remove(temporary.c_str());
    fail(path, ": cannot rename ", temporary, " into place");
  }
}

}  // namespace k2f
