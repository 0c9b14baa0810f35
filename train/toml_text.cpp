#include "train/toml_text.h"

#include <set>

#include "base/error.h"
#include "data/utf8.h"

namespace k2f::train {
namespace {

// Supplementary Private Use Area-A: above U+FEFF, where toml++ answers "not whitespace" before
// it consults the table.
constexpr char32_t kFirstReplacement = 0xF0000;
constexpr char32_t kLastReplacement = 0xFFFFD;

// Calls f(code point, offset, length) for each valid sequence and f(0, offset, 0) for each byte
// that starts none (left for toml++ to report as invalid UTF-8).
template <typename F>
void for_each_code_point(std::string_view text, F&& f) {
  char32_t cp = 0;
  for (size_t i = 0; i < text.size();) {
    const size_t length = data::decode_utf8_at(text, i, &cp);
    f(length ? cp : 0, i, length);
    i += length ? length : 1;
  }
}

}  // namespace

bool toml_whitespace_table_lacks(char32_t c) {
  // The table splits U+00A0..U+FEFF into 64 blocks of 0x3FA code points; blocks 0, 11 and 63
  // pass its first test, and its switch answers only blocks 5 and 7 (and U+00A0, U+3000,
  // U+FEFF, which it tests before the switch).
  return (c >= 0x00A1 && c <= 0x0499) || (c >= 0x2C5E && c <= 0x3057 && c != 0x3000) ||
         (c >= 0xFB26 && c <= 0xFEFE);
}

TomlSafeText::TomlSafeText(std::string_view utf8) {
  std::set<char32_t> present;
  for_each_code_point(utf8, [&](char32_t cp, size_t, size_t length) {
    if (length && cp >= kFirstReplacement) present.insert(cp);
  });
  std::map<char32_t, char32_t> replacement_of;
  char32_t next = kFirstReplacement;
  text_.reserve(utf8.size());
  for_each_code_point(utf8, [&](char32_t cp, size_t at, size_t length) {
    if (length == 0 || !toml_whitespace_table_lacks(cp)) {
      text_.append(utf8.substr(at, length ? length : 1));
      return;
    }
    auto [it, fresh] = replacement_of.try_emplace(cp, 0);
    if (fresh) {
      while (present.count(next)) ++next;
      check(next <= kLastReplacement, "recipe text uses every private-use code point; cannot read it");
      it->second = next;
      original_of_[next++] = cp;
    }
    data::append_utf8(text_, it->second);
  });
}

std::string TomlSafeText::restore(std::string_view parsed) const {
  if (original_of_.empty()) return std::string(parsed);
  std::string out;
  out.reserve(parsed.size());
  for_each_code_point(parsed, [&](char32_t cp, size_t at, size_t length) {
    const auto it = length ? original_of_.find(cp) : original_of_.end();
    if (it == original_of_.end()) out.append(parsed.substr(at, length ? length : 1));
    else data::append_utf8(out, it->second);
  });
  return out;
}

}  // namespace k2f::train
