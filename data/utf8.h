// UTF-8 validation with the position of the first bad byte, so input errors can say where
// ("line 12, byte 40: invalid UTF-8") rather than only that something failed.
#pragma once

#include <cstddef>
#include <string_view>

namespace k2f::data {

// Offset of the first byte that does not start a valid UTF-8 sequence (overlong forms,
// surrogates and code points above U+10FFFF are invalid), or npos when all of `text` is valid.
size_t find_invalid_utf8(std::string_view text);

}  // namespace k2f::data
