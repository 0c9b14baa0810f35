#include "data/utf8.h"

#include <cstdint>

namespace k2f::data {

size_t decode_utf8_at(std::string_view text, size_t at, char32_t* code_point) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data()) + at;
  const size_t available = text.size() - at;
  const uint8_t c = s[0];
  if (c < 0x80) {
    *code_point = c;
    return 1;
  }
  size_t length = 0;
  uint32_t cp = 0, min_cp = 0;
  if ((c & 0xE0) == 0xC0) length = 2, cp = c & 0x1F, min_cp = 0x80;
  else if ((c & 0xF0) == 0xE0) length = 3, cp = c & 0x0F, min_cp = 0x800;
  else if ((c & 0xF8) == 0xF0) length = 4, cp = c & 0x07, min_cp = 0x10000;
  else return 0;
  if (length > available) return 0;
  for (size_t k = 1; k < length; ++k) {
    if ((s[k] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[k] & 0x3F);
  }
  if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  *code_point = cp;
  return length;
}

size_t find_invalid_utf8(std::string_view text) {
  char32_t cp = 0;
  for (size_t i = 0; i < text.size();) {
    const size_t length = decode_utf8_at(text, i, &cp);
    if (length == 0) return i;
    i += length;
  }
  return std::string_view::npos;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace k2f::data
