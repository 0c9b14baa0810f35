#include "data/utf8.h"

#include <cstdint>

namespace k2f::data {

size_t find_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int length = 0;
    uint32_t cp = 0, min_cp = 0;
    if ((c & 0xE0) == 0xC0) length = 2, cp = c & 0x1F, min_cp = 0x80;
    else if ((c & 0xF0) == 0xE0) length = 3, cp = c & 0x0F, min_cp = 0x800;
    else if ((c & 0xF8) == 0xF0) length = 4, cp = c & 0x07, min_cp = 0x10000;
    else return i;
    if (i + length > n) return i;
    for (int k = 1; k < length; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += length;
  }
  return std::string_view::npos;
}

}  // namespace k2f::data
