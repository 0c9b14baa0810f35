// train/toml_text.cpp: every code point toml++ 3.3.0's whitespace table cannot answer is
// replaced before parsing and comes back afterwards; every other one gets a defined answer
// (under the sanitizer build, UBSan halts on the first code point the table cannot answer).
#include <gtest/gtest.h>

#include <toml++/toml.h>

#include "data/utf8.h"
#include "train/toml_text.h"

namespace k2f::train {
namespace {

std::string utf8(char32_t cp) {
  std::string out;
  data::append_utf8(out, cp);
  return out;
}

bool is_unicode_space_toml_accepts(char32_t c) {
  return c == 0xA0 || c == 0x1680 || c == 0x180E || (c >= 0x2000 && c <= 0x200B) || c == 0x202F ||
         c == 0x205F || c == 0x2060 || c == 0x3000 || c == 0xFEFF;
}

TEST(TomlText, EveryCodePointIsEitherReplacedOrAnsweredByTheTable) {
  size_t replaced = 0;
  for (char32_t c = 0; c <= 0x10FFFF; ++c) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    if (toml_whitespace_table_lacks(c)) {
      ++replaced;
      const TomlSafeText text(utf8(c));
      char32_t seen = 0;
      ASSERT_EQ(data::decode_utf8_at(text.text(), 0, &seen), text.text().size());
      ASSERT_GE(seen, 0xF0000u) << std::hex << static_cast<uint32_t>(c);
      ASSERT_FALSE(toml::impl::is_non_ascii_horizontal_whitespace(seen));
      ASSERT_EQ(text.restore(text.text()), utf8(c));
    } else {
      ASSERT_EQ(toml::impl::is_non_ascii_horizontal_whitespace(c), is_unicode_space_toml_accepts(c))
          << std::hex << static_cast<uint32_t>(c);
      ASSERT_EQ(TomlSafeText(utf8(c)).text(), utf8(c));
    }
  }
  EXPECT_EQ(replaced, (0x499u - 0xA1 + 1) + (0x3057u - 0x2C5E + 1 - 1) + (0xFEFEu - 0xFB26 + 1));
}

TEST(TomlText, ReplacementsAvoidPrivateUseCodePointsAlreadyInTheText) {
  // U+F0000 and U+F0001 are in the text already, so U+00E9 and U+3001 take U+F0002, U+F0003.
  const std::string original = "caf\u00e9 \U000F0000 \u3001\U000F0001 \u00e9 \xff ascii";
  const TomlSafeText text(original);
  EXPECT_EQ(text.text(), "caf\U000F0002 \U000F0000 \U000F0003\U000F0001 \U000F0002 \xff ascii");
  EXPECT_EQ(text.restore(text.text()), original);
  EXPECT_EQ(text.restore("saw '\U000F0003'"), "saw '\u3001'");
}

}  // namespace
}  // namespace k2f::train
