// Where the end-to-end tests find the k2forge binary and the source tree (compile definitions
// set by tests/CMakeLists.txt).
#pragma once

#include <string>

namespace k2f::testing {

inline const std::string kBinary = K2F_BINARY;
inline const std::string kSource = K2F_SOURCE_DIR;

}  // namespace k2f::testing
