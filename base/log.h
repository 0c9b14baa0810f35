// Minimal leveled logging to stderr with a "k2forge:" prefix, so console output stays readable
// next to progress lines on stdout. Quiet mode silences info lines (tests, --json output).
#pragma once

#include <iostream>
#include <sstream>

namespace k2f::log {

bool& quiet();

template <typename... Parts>
void info(const Parts&... parts) {
  if (quiet()) return;
  std::ostringstream out;
  out << "k2forge: ";
  (out << ... << parts);
  out << '\n';
  std::cerr << out.str();
}

template <typename... Parts>
void warn(const Parts&... parts) {
  std::ostringstream out;
  out << "k2forge: warning: ";
  (out << ... << parts);
  out << '\n';
  std::cerr << out.str();
}

}  // namespace k2f::log
