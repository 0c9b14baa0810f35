// Recipe text as toml++ may safely read it. toml++ 3.3.0 (Debian 12's) classifies non-ASCII
// whitespace with a lookup table that, for about 3,000 code points, ends in
// __builtin_unreachable (upstream issues #190 and #295, fixed by pull request #305): undefined
// behaviour on a user's recipe, found by fuzz/fuzz_recipe wherever the parser asks "is this
// whitespace?" (after a value, in a key, after a backslash in a multi-line string). TomlSafeText
// replaces each such code point with a private-use one absent from the text, which toml++
// classifies the same way (not whitespace, not a key character) without the table, and maps
// keys, strings and error messages back. Only what toml++ sees changes; the meaning does not.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace k2f::train {

// Whether toml++ 3.3.0's non-ASCII whitespace table has no answer for `c`.
bool toml_whitespace_table_lacks(char32_t c);

class TomlSafeText {
 public:
  explicit TomlSafeText(std::string_view utf8);

  // The text to hand to toml::parse.
  const std::string& text() const { return text_; }
  // A key, string value or message from toml++, with the original code points put back.
  std::string restore(std::string_view parsed) const;

 private:
  std::string text_;
  std::map<char32_t, char32_t> original_of_;  // replacement -> original
};

}  // namespace k2f::train
