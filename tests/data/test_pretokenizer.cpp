// Tests of data/pretokenizer.cpp: splits of Kimi's pattern worked out by hand from the regex
// (K2_REFERENCE section 6), invalid UTF-8 handling, and pattern errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "data/pretokenizer.h"
#include "test_util.h"

namespace k2f::data {
namespace {

std::vector<std::string> split(const std::string& text) {
  static const Pretokenizer pretokenizer(kimi_pattern());
  std::vector<std::string> pieces;
  pretokenizer.split(text, [&](std::string_view piece) { pieces.emplace_back(piece); });
  return pieces;
}

using Pieces = std::vector<std::string>;

TEST(Pretokenizer, WordsContractionsDigitsAndHan) {
  EXPECT_EQ(split("Hello world's 12345 你好世界!!\n\n  x"),
            (Pieces{"Hello", " world's", " ", "123", "45", " ", "你好世界", "!!\n\n", " ", " x"}));
}

TEST(Pretokenizer, UppercaseRunsTakeCaseInsensitiveContractions) {
  EXPECT_EQ(split("I'M HAPPY don't"), (Pieces{"I'M", " HAPPY", " don't"}));
  EXPECT_EQ(split("CamelCase"), (Pieces{"Camel", "Case"}));
}

TEST(Pretokenizer, WhitespaceRunsLeaveOneSpaceForTheNextWord) {
  EXPECT_EQ(split("a  \n\n b\t\tc"), (Pieces{"a", "  \n\n", " b", "\t", "\tc"}));
  EXPECT_EQ(split("x   "), (Pieces{"x", "   "}));
}

TEST(Pretokenizer, PunctuationAndNumbers) {
  EXPECT_EQ(split("$$$ 3.14159"), (Pieces{"$$$", " ", "3", ".", "141", "59"}));
}

TEST(Pretokenizer, HanIsSeparatedFromOtherLetters) {
  EXPECT_EQ(split("abc中文def"), (Pieces{"abc", "中文", "def"}));
  EXPECT_EQ(split("日本語です"), (Pieces{"日本語", "です"}));  // hiragana is Lo but not Han
}

TEST(Pretokenizer, NextLineIsWhitespaceAsInTiktoken) {
  // U+0085 is Unicode White_Space (Rust's \s) though PCRE2's \s lacks it.
  EXPECT_EQ(split("a\u0085\u0085b"), (Pieces{"a", "\u0085", "\u0085b"}));
}

TEST(Pretokenizer, InvalidUtf8BytesBecomeTheirOwnPieces) {
  EXPECT_EQ(split("ab\xff" "cd"), (Pieces{"ab", "\xff", "cd"}));
  EXPECT_EQ(split("\xc3"), (Pieces{"\xc3"}));
  const std::string bytes = "x \xe4\xbd hello\x80\x80 ";
  std::string joined;
  for (const auto& p : split(bytes)) joined += p;
  EXPECT_EQ(joined, bytes);
}

TEST(Pretokenizer, AMegabyteWordIsOnePiece) {
  // Deep enough to exhaust a small JIT stack; the split must still be exact.
  std::string word(1 << 20, 'a');
  for (size_t i = 0; i < word.size(); i += 7) word[i] = 'z';
  EXPECT_EQ(split(" " + word + " ok"), (Pieces{" " + word, " ok"}));
}

TEST(Pretokenizer, BadPatternsAreErrors) {
  testing::expect_error([] { Pretokenizer("(unclosed"); }, {"pre-tokenisation pattern", "offset"});
  const Pretokenizer empty_match("a*");
  testing::expect_error([&] { empty_match.split("b", [](std::string_view) {}); }, {"matched the empty string"});
}

// Inputs of fuzz/fuzz_tiktoken_pattern.cpp kept in fuzz/regressions/tiktoken_pattern/ (a pattern,
// then after a NUL byte a text), replayed as the fuzz target does: a pattern is refused with an
// error naming it, or it compiles and splits its text into pieces that rejoin it. The first made
// the fuzz build's JIT compilation fail and the error message read past PCRE2's buffer (a JIT
// failure now falls back to the interpreter): it must compile.
TEST(Pretokenizer, FuzzFoundInputsAreRefusedOrSplitIntoPiecesThatRejoinTheText) {
  const std::filesystem::path regressions = std::string(K2F_SOURCE_DIR) + "/fuzz/regressions/tiktoken_pattern";
  int compiled = 0, refused = 0;
  bool jit_case_compiled = false;
  for (const auto& entry : std::filesystem::directory_iterator(regressions)) {
    std::ifstream file(entry.path(), std::ios::binary);
    std::stringstream bytes;
    bytes << file.rdbuf();
    const std::string input = bytes.str();
    const size_t split_at = input.find('\0');
    const std::string text = split_at == std::string::npos ? "" : input.substr(split_at + 1);
    try {
      const Pretokenizer pretokenizer(input.substr(0, split_at));
      std::string joined;
      pretokenizer.split(text, [&](std::string_view piece) { joined += piece; });
      EXPECT_EQ(joined, text) << entry.path();
      ++compiled;
      jit_case_compiled |= entry.path().filename() == "kimi_pattern_jit_failure_message";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("pre-tokenisation pattern"), std::string::npos) << e.what();
      ++refused;
    }
  }
  EXPECT_TRUE(jit_case_compiled);
  EXPECT_GE(refused, 1);
}

}  // namespace
}  // namespace k2f::data
