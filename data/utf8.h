// UTF-8 decoding with the position of the first bad byte, so input errors can say where
// ("line 12, byte 40: invalid UTF-8") rather than only that something failed.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace k2f::data {

// Decodes the sequence starting at text[at] into *code_point and returns its length in bytes,
// or 0 when no valid sequence starts there (overlong forms, surrogates and code points above
// U+10FFFF are invalid).
size_t decode_utf8_at(std::string_view text, size_t at, char32_t* code_point);

// Offset of the first byte that does not start a valid UTF-8 sequence, or npos when all of
// `text` is valid.
size_t find_invalid_utf8(std::string_view text);

// Appends the UTF-8 encoding of a valid code point.
void append_utf8(std::string& out, char32_t code_point);

}  // namespace k2f::data
