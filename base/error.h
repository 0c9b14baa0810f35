// The one error type of k2forge. Library code throws it (never exits); `main` prints the
// message once and returns non-zero. Messages name the file, field or value at fault and what
// was expected, so a user can act on them without a stack trace.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace k2f {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
inline void append_all(std::ostringstream&) {}
template <typename T, typename... Rest>
void append_all(std::ostringstream& out, const T& first, const Rest&... rest) {
  out << first;
  append_all(out, rest...);
}
}  // namespace detail

// Concatenates its arguments with operator<< and throws k2f::Error.
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream out;
  detail::append_all(out, parts...);
  throw Error(out.str());
}

// Throws k2f::Error built from `parts` unless `condition` holds.
template <typename... Parts>
void check(bool condition, const Parts&... parts) {
  if (!condition) fail(parts...);
}

}  // namespace k2f
