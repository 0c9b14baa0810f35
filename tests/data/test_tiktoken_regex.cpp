// Tests of data/tiktoken_regex.cpp: each construct whose meaning differs between tiktoken's
// (Rust) regex syntax and PCRE2 is matched, after translation, as Rust's documentation defines it;
// constructs without a translation are refused with an error naming them; pat_str is read from a
// released tokenization_kimi.py layout.
#include <gtest/gtest.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <fstream>

#include "data/tiktoken_regex.h"
#include "test_util.h"

namespace k2f::data {
namespace {

using testing::expect_error;

// Whether the translation of `tiktoken_pattern` matches the whole of `subject`.
bool matches_whole(const std::string& tiktoken_pattern, const std::string& subject) {
  const std::string pattern = tiktoken_to_pcre2(tiktoken_pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_compile_context* context = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(context, PCRE2_NEWLINE_LF);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED | PCRE2_ENDANCHORED, &error, &offset, context);
  pcre2_compile_context_free(context);
  EXPECT_NE(code, nullptr) << "PCRE2 refused the translation " << pattern << " at offset " << offset;
  if (!code) return false;
  pcre2_match_data* match = pcre2_match_data_create_from_pattern(code, nullptr);
  const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), 0, 0, match, nullptr);
  pcre2_match_data_free(match);
  pcre2_code_free(code);
  return rc >= 0;
}

TEST(TiktokenRegex, IntersectionKeepsOnlyCharactersInBothSets) {
  EXPECT_TRUE(matches_whole("[a-z&&[^aeiou]]+", "bcd"));
  EXPECT_FALSE(matches_whole("[a-z&&[^aeiou]]", "a"));
  EXPECT_FALSE(matches_whole("[a-z&&[^aeiou]]", "&"));
  EXPECT_TRUE(matches_whole("[a-z&&[d-f]]", "e"));
  EXPECT_FALSE(matches_whole("[a-z&&[d-f]]", "g"));
  // The Kimi form: letters unless Han; PCRE2 alone would read '&', '[' and ']' as literals.
  EXPECT_TRUE(matches_whole(R"([\p{Lu}\p{Lo}&&[^\p{Han}]])", "A"));
  EXPECT_TRUE(matches_whole(R"([\p{Lu}\p{Lo}&&[^\p{Han}]])", "の"));
  EXPECT_FALSE(matches_whole(R"([\p{Lu}\p{Lo}&&[^\p{Han}]])", "中"));
  EXPECT_FALSE(matches_whole(R"([\p{Lu}\p{Lo}&&[^\p{Han}]])", "&"));
  EXPECT_FALSE(matches_whole(R"([\p{Lu}\p{Lo}&&[^\p{Han}]])", "]"));
}

TEST(TiktokenRegex, DifferenceAndSymmetricDifference) {
  EXPECT_TRUE(matches_whole(R"([\p{L}--\p{Lu}])", "a"));
  EXPECT_FALSE(matches_whole(R"([\p{L}--\p{Lu}])", "A"));
  EXPECT_FALSE(matches_whole(R"([\p{L}--\p{Lu}])", "-"));
  EXPECT_TRUE(matches_whole("[ab~~bc]", "a"));
  EXPECT_TRUE(matches_whole("[ab~~bc]", "c"));
  EXPECT_FALSE(matches_whole("[ab~~bc]", "b"));
  EXPECT_FALSE(matches_whole("[ab~~bc]", "~"));
}

TEST(TiktokenRegex, NestedClassesAreUnionsNotLiteralBrackets) {
  EXPECT_TRUE(matches_whole("[a[bc]]", "c"));
  EXPECT_FALSE(matches_whole("[a[bc]]", "["));
  EXPECT_FALSE(matches_whole("[a[bc]]", "]"));
  EXPECT_TRUE(matches_whole("[^a[bc]]", "d"));
  EXPECT_FALSE(matches_whole("[^a[bc]]", "b"));
  EXPECT_TRUE(matches_whole("[^[^a]]", "a"));  // the complement of the complement
  EXPECT_FALSE(matches_whole("[^[^a]]", "b"));
  EXPECT_TRUE(matches_whole("[]a]", "]"));     // a leading ']' is literal
  EXPECT_TRUE(matches_whole("[a-]", "-"));     // so is a trailing '-'
}

TEST(TiktokenRegex, BareScriptNamesAreScriptsNotScriptExtensions) {
  // U+3001 IDEOGRAPHIC COMMA is Common script with Han among its extensions: Rust's \p{Han}
  // excludes it (PCRE2 10.40+ would include it under a bare name).
  EXPECT_TRUE(matches_whole(R"(\p{Han})", "中"));
  EXPECT_FALSE(matches_whole(R"(\p{Han})", "、"));
  EXPECT_FALSE(matches_whole(R"([\p{Han}])", "、"));
  EXPECT_TRUE(matches_whole(R"(\p{scx=Han})", "、"));
  EXPECT_TRUE(matches_whole(R"(\p{Greek}+)", "Ωμέγα"));
  EXPECT_TRUE(matches_whole(R"(\P{Greek})", "a"));
}

TEST(TiktokenRegex, GeneralCategoriesByEveryName) {
  EXPECT_TRUE(matches_whole(R"(\pL\p{Letter}\p{Uppercase_Letter}\p{lu}\p{gc=Nd})", "abCD7"));
  EXPECT_FALSE(matches_whole(R"(\p{^Lu})", "A"));
  EXPECT_TRUE(matches_whole(R"(\d+)", "١٢٣"));  // Rust's \d is Unicode Nd
  EXPECT_TRUE(matches_whole(R"(\p{ASCII}+)", "az~"));
  EXPECT_FALSE(matches_whole(R"(\p{ASCII})", "é"));
}

TEST(TiktokenRegex, WhitespaceIsUnicodeWhiteSpace) {
  // U+0085 NEXT LINE is White_Space (Rust's \s); PCRE2's \s lacks it.
  EXPECT_TRUE(matches_whole(R"(\s)", "\u0085"));
  EXPECT_TRUE(matches_whole(R"([\s])", "\u0085"));
  EXPECT_FALSE(matches_whole(R"(\S)", "\u0085"));
  EXPECT_FALSE(matches_whole(R"([^\s])", "\u0085"));
  EXPECT_TRUE(matches_whole(R"([\S])", "x"));
  EXPECT_TRUE(matches_whole(R"(\s+)", " \t\n\u00a0\u3000"));
  EXPECT_FALSE(matches_whole(R"(\s)", "\u200b"));  // ZERO WIDTH SPACE is not White_Space
}

TEST(TiktokenRegex, EscapesAnchorsAndDotMeanWhatRustSays) {
  EXPECT_TRUE(matches_whole(R"(\v)", "\x0b"));
  EXPECT_FALSE(matches_whole(R"(\v)", "\n"));  // PCRE2's \v is any vertical space
  EXPECT_TRUE(matches_whole(R"(\u{41}\x42\u0043\U00000044)", "ABCD"));
  EXPECT_TRUE(matches_whole(R"(\x{1F642})", "🙂"));
  EXPECT_FALSE(matches_whole("a$", "a\n"));  // Rust's $ is only the end of the text
  EXPECT_TRUE(matches_whole("a$", "a"));
  EXPECT_TRUE(matches_whole(".", "\r"));
  EXPECT_FALSE(matches_whole(".", "\n"));
  EXPECT_TRUE(matches_whole("(?s).", "\n"));
  EXPECT_TRUE(matches_whole("(?i:'s)", "'S"));
  EXPECT_TRUE(matches_whole(R"(\p{N}{1,3})", "123"));
  EXPECT_FALSE(matches_whole(R"(\p{N}{1,3})", "1234"));
  EXPECT_TRUE(matches_whole(R"(a++b)", "aab"));  // fancy-regex possessive, as in PCRE2
  EXPECT_TRUE(matches_whole(R"(\.\[\&)", ".[&"));
}

TEST(TiktokenRegex, ConstructsWithoutATranslationAreRefusedByName) {
  expect_error([] { tiktoken_to_pcre2(R"(\w+)"); }, {"offset 0", "\\w", "word characters"});
  expect_error([] { tiktoken_to_pcre2(R"(x\b)"); }, {"offset 1", "\\b"});
  expect_error([] { tiktoken_to_pcre2("(?x)a b"); }, {"offset 2", "(?x)"});
  expect_error([] { tiktoken_to_pcre2("(?m)^a$"); }, {"(?m)"});
  expect_error([] { tiktoken_to_pcre2("(?U)a+"); }, {"(?U)"});
  expect_error([] { tiktoken_to_pcre2("[[:alpha:]]"); }, {"offset 1", "POSIX class"});
  expect_error([] { tiktoken_to_pcre2("a{,3}"); }, {"offset 1", "{,n}"});
  expect_error([] { tiktoken_to_pcre2("x{"); }, {"offset 1", "counted repetition"});
  expect_error([] { tiktoken_to_pcre2(R"(\p{NoSuchThing})"); }, {"\\p{NoSuchThing}"});
  expect_error([] { tiktoken_to_pcre2(R"(\p{sc=Klingon})"); }, {"unknown script", "Klingon"});
  expect_error([] { tiktoken_to_pcre2(R"(\h)"); }, {"escape \\h"});
  expect_error([] { tiktoken_to_pcre2("[abc"); }, {"unterminated character class"});
  expect_error([] { tiktoken_to_pcre2("(ab"); }, {"pre-tokenisation pattern", "unbalanced '('"});
  expect_error([] { tiktoken_to_pcre2("ab)"); }, {"offset 2", "unbalanced ')'"});
  expect_error([] { tiktoken_to_pcre2("a\\"); }, {"lone backslash"});
}

// Found by fuzz/fuzz_tiktoken_pattern (fuzz/regressions/tiktoken_pattern/): every '~~' writes both
// operands twice, so a chain of them doubled the translation per link until memory ran out; deep
// bracket nesting recursed without bound. Both are refused, as Rust's own parser refuses nesting
// past its limit; a short chain still translates.
TEST(TiktokenRegex, ClassesThatWouldOutgrowPcre2AreRefusedBeforeTheyAreWritten) {
  std::string chain = "[a";
  for (int i = 0; i < 40; ++i) chain += "~~b";
  expect_error([&] { tiktoken_to_pcre2(chain + "]"); }, {"nests '~~' so deeply", "1048576 bytes"});
  EXPECT_TRUE(matches_whole("[a-c~~b-d~~c]", "c"));
  EXPECT_FALSE(matches_whole("[a-c~~b-d~~c]", "b"));
  const std::string deep = std::string(251, '[') + "a" + std::string(251, ']');
  expect_error([&] { tiktoken_to_pcre2(deep); }, {"offset 250", "nest deeper than 250 levels"});
  EXPECT_TRUE(matches_whole(std::string(250, '[') + "a" + std::string(250, ']'), "a"));
  const std::string found = std::string(K2F_SOURCE_DIR) + "/fuzz/regressions/tiktoken_pattern/xor_chain_out_of_memory";
  std::ifstream in(found, std::ios::binary);
  const std::string pattern((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(pattern.size(), 100u) << found;
  expect_error([&] { tiktoken_to_pcre2(pattern); }, {"pre-tokenisation pattern"});
}

TEST(TiktokenRegex, ReadsPatStrFromAReleasedTokenizationPy) {
  const testing::ScratchDir dir("tokenization-py");
  const std::string joined = dir / "joined.py", single = dir / "single.py", missing = dir / "missing.py";
  std::ofstream(joined) << "class T:\n    pat_str = \"|\".join(\n        [\n"
                        << "            r\"\"\"[\\p{Han}]+\"\"\",  # Han runs\n"
                        << "            r\"\"\"\\s+(?!\\S)\"\"\",\n"
                        << "            '\\\\d',\n        ]\n    )\n";
  EXPECT_EQ(read_tokenization_py_pattern(joined), R"([\p{Han}]+|\s+(?!\S)|\d)");
  std::ofstream(single) << "pat_str = r\"\\p{L}+|\\s+\"\n";
  EXPECT_EQ(read_tokenization_py_pattern(single), R"(\p{L}+|\s+)");
  std::ofstream(missing) << "class T:\n    pass\n";
  expect_error([&] { read_tokenization_py_pattern(missing); }, {"missing.py", "pat_str"});
  std::ofstream(missing, std::ios::trunc) << "pat_str = \"|\".join([r\"a\", compute()])\n";
  expect_error([&] { read_tokenization_py_pattern(missing); }, {"missing.py", "other than string literals"});
}

}  // namespace
}  // namespace k2f::data
