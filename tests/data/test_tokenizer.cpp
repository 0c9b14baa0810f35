// Tests of data/tokenizer.cpp: encode equals the naive reference (naive_bpe.h) on real and random
// text (multi-byte UTF-8, CJK, digits, whitespace runs, long pieces, special tokens), exact
// decode of arbitrary bytes, a hand-computed merge order, the tokenizer hash, and every
// malformed tokenizer file a user can hand it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "base/json_io.h"
#include "data/base64.h"
#include "data/document_reader.h"
#include "data/pretokenizer.h"
#include "data/tiktoken_regex.h"
#include "data/tokenizer.h"
#include "data/naive_bpe.h"
#include "test_util.h"

namespace k2f::data {
namespace {

using testing::expect_error;
using testing::NaiveBpe;
using testing::ScratchDir;

const std::string kAssets = std::string(K2F_SOURCE_DIR) + "/assets";

const Tokenizer& asset_tokenizer() {
  static const Tokenizer tokenizer = Tokenizer::load(kAssets + "/tokenizer");
  return tokenizer;
}

NaiveBpe naive_for(const Tokenizer& tokenizer) {
  std::map<std::string, int> specials;
  for (const auto& s : tokenizer.special_tokens()) specials[s.content] = s.id;
  return NaiveBpe(tokenizer.tokens(), specials, testing::naive_kimi_pattern());
}

std::vector<int> as_int(const std::vector<int32_t>& ids) { return std::vector<int>(ids.begin(), ids.end()); }

std::vector<std::string> byte_tokens() {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.emplace_back(1, static_cast<char>(b));
  return tokens;
}

// Random text from fragments that stress the pattern: scripts, digits, whitespace, specials.
std::string random_text(std::mt19937_64& rng, size_t fragments) {
  static const std::vector<std::string> pieces = {
      "the", " The", "quick", " brown", "FOX", "'s", "'LL", " don't", "I'M", "é", "ü", "naïve", "café", "Ωμέγα",
      "Привет", "日本語", "你好", "世界", "中文字", "한국어", "ελληνικά", "🙂", "👍🏽", "e\u0301", "\u0301", "0", "7",
      "12345", "3.14159", "1,000,000", " ", "  ", "     ", "\t", "\n", "\r\n", "\n\n\n", " \n ", "\u00a0", "\u3000",
      "\u0085", "!", "?!", "...", "(", ")", "{\"a\": 1}", "<", "|", "<|im_end|>", "[EOS]", "<|im_user|>", "<think>",
      "[BOS]x", "$", "#", "@user", "a_b", "x=y+z;", "\\", "/", "-", "--", "—"};
  std::string text;
  for (size_t i = 0; i < fragments; ++i) text += pieces[rng() % pieces.size()];
  return text;
}

TEST(Tokenizer, HandBuiltRanksMergeLowestRankLeftmostFirst) {
  auto tokens = byte_tokens();
  tokens.push_back("aa");   // 256
  tokens.push_back("aaa");  // 257
  tokens.push_back("bc");   // 258
  tokens.push_back("abc");  // 259
  const Tokenizer tokenizer(tokens, {{260, "[EOS]"}}, kimi_pattern());
  // "aaaa": "aa" (256) at 0 merges first (leftmost), then [aa, a, a]: "aa" at 1 (256) beats "aaa" (257).
  EXPECT_EQ(tokenizer.encode("aaaa"), (std::vector<int32_t>{256, 256}));
  // "aaa" is itself a token: one id.
  EXPECT_EQ(tokenizer.encode("aaa"), (std::vector<int32_t>{257}));
  // "abc": "bc" (258) merges, then "a"+"bc" = "abc" (259).
  EXPECT_EQ(tokenizer.encode("abc"), (std::vector<int32_t>{259}));
  // "aabc": "aa" (256) then "bc" (258); "aa"+"bc" is no token.
  EXPECT_EQ(tokenizer.encode("aabc"), (std::vector<int32_t>{256, 258}));
  EXPECT_EQ(tokenizer.vocab_size(), 261);
  EXPECT_EQ(tokenizer.eos_id(), 260);
}

TEST(Tokenizer, DefaultPatternIsTheHandWrittenTranslation) {
  EXPECT_EQ(tiktoken_to_pcre2(kimi_pattern()), testing::naive_kimi_pattern());
  EXPECT_EQ(asset_tokenizer().pattern(), kimi_pattern());
}

// The independent reference (tests/reference/kimi_pretokenizer_reference.py, mrab-regex).
nlohmann::json released_reference() {
  return read_json_file(std::string(K2F_SOURCE_DIR) + "/tests/reference/kimi_released_pattern_ids.json");
}

// A tokenizer directory as Moonshot ships it: no pattern.txt; the pattern is the pat_str of
// tokenization_kimi.py, a "|".join of raw string literals, laid out here as the released file does.
void write_released_layout(const ScratchDir& dir) {
  std::filesystem::copy_file(kAssets + "/tokenizer/tiktoken.model", dir / "tiktoken.model");
  std::filesystem::copy_file(kAssets + "/tokenizer/tokenizer_config.json", dir / "tokenizer_config.json");
  std::ofstream file(dir / "tokenization_kimi.py");
  file << "import tiktoken\n\n\nclass TikTokenTokenizer:\n    num_reserved_special_tokens = 256\n\n"
       << "    pat_str = \"|\".join(\n        [\n";
  const auto reference = released_reference();
  for (const auto& piece : reference["released_pieces"])
    file << "            r\"\"\"" << piece.get<std::string>() << "\"\"\",  # one alternative\n";
  file << "        ]\n    )\n";
}

TEST(Tokenizer, ReleasedLayoutEncodesAsTheIndependentReference) {
  const ScratchDir dir("released-tokenizer");
  write_released_layout(dir);
  const auto reference = released_reference();
  EXPECT_EQ(reference["pattern"].get<std::string>(), kimi_pattern());
  const Tokenizer tokenizer = Tokenizer::load(dir.str());
  EXPECT_EQ(tokenizer.pattern(), kimi_pattern());
  const Pretokenizer pretokenizer(tokenizer.pattern());
  for (const auto& item : reference["cases"]) {
    const std::string text = item["text"];
    std::vector<std::string> pieces;
    pretokenizer.split(text, [&](std::string_view piece) { pieces.emplace_back(piece); });
    EXPECT_EQ(pieces, item["pieces"].get<std::vector<std::string>>()) << text;
    EXPECT_EQ(as_int(tokenizer.encode(text)), item["ids"].get<std::vector<int>>()) << text;
  }
}

TEST(Tokenizer, ReleasedLayoutWithoutAPatternIsAnErrorNamingTheFile) {
  const ScratchDir dir("released-tokenizer-bad");
  write_released_layout(dir);
  std::ofstream(dir / "tokenization_kimi.py", std::ios::trunc) << "class TikTokenTokenizer:\n    pass\n";
  expect_error([&] { Tokenizer::load(dir.str()); }, {"tokenization_kimi.py", "pat_str"});
}

TEST(Tokenizer, PatternTxtInTiktokenSyntaxKeepsItsMeaning) {
  // The released text copied to pattern.txt: intersection read as intersection, not as the
  // literal characters '&' and ']' (which PCRE2 would make of it).
  const ScratchDir dir("pattern-txt");
  write_released_layout(dir);
  std::filesystem::remove(dir / "tokenization_kimi.py");
  std::ofstream(dir / "pattern.txt") << kimi_pattern() << "\n";
  const Tokenizer tokenizer = Tokenizer::load(dir.str());
  EXPECT_EQ(tokenizer.encode("a&&]b"), asset_tokenizer().encode("a&&]b"));
  EXPECT_EQ(tokenizer.hash(), asset_tokenizer().hash());
}

TEST(Tokenizer, MatchesNaiveBpeOnRealText) {
  const auto& tokenizer = asset_tokenizer();
  const NaiveBpe naive = naive_for(tokenizer);
  DocumentReader reader(kAssets + "/corpus/python_docs_heldout.jsonl");
  std::string text;
  ASSERT_TRUE(reader.next(text));
  text = text.substr(0, 40000);
  const auto ids = tokenizer.encode(text);
  EXPECT_EQ(as_int(ids), naive.encode_ordinary(text));
  EXPECT_EQ(tokenizer.decode(ids), text);
  EXPECT_LT(ids.size(), text.size() / 3) << "a trained tokenizer should compress English prose";
}

TEST(Tokenizer, MatchesNaiveBpeOnRandomMultilingualText) {
  const auto& tokenizer = asset_tokenizer();
  const NaiveBpe naive = naive_for(tokenizer);
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const std::string text = random_text(rng, 1 + rng() % 40);
    const auto ids = tokenizer.encode(text);
    ASSERT_EQ(as_int(ids), naive.encode_ordinary(text)) << "text: " << text;
    ASSERT_EQ(as_int(tokenizer.encode(text, tokenizer.all_special_ids())), naive.encode_with_specials(text))
        << "text: " << text;
    ASSERT_EQ(tokenizer.decode(ids), text);
  }
}

TEST(Tokenizer, LongPiecesTakeTheHeapPathAndStillMatchNaive) {
  const auto& tokenizer = asset_tokenizer();
  const NaiveBpe naive = naive_for(tokenizer);
  std::mt19937_64 rng(11);
  std::vector<std::string> texts = {std::string(1000, ' ') + "x", std::string(700, '='), std::string(301, '\n')};
  for (int i = 0; i < 20; ++i) {
    std::string word;
    const size_t length = BpeRanks::kHeapThreshold + rng() % 300;
    for (size_t k = 0; k < length; ++k) word += static_cast<char>('a' + rng() % 26);
    texts.push_back(" " + word);
  }
  for (const auto& text : texts) {
    ASSERT_EQ(as_int(tokenizer.encode(text)), naive.encode_ordinary(text)) << text.substr(0, 40);
    ASSERT_EQ(tokenizer.decode(tokenizer.encode(text)), text);
  }
}

TEST(Tokenizer, SpecialTokensOnlyWhereAllowed) {
  const auto& tokenizer = asset_tokenizer();
  const std::string text = "hi<|im_end|>there[EOS]<|im_user|>";
  const int32_t im_end = tokenizer.special_id("<|im_end|>"), eos = tokenizer.special_id("[EOS]");
  const auto ordinary = tokenizer.encode(text);
  for (int32_t id : ordinary) EXPECT_LT(id, tokenizer.num_ranks()) << "ordinary text produced a special id";
  EXPECT_EQ(tokenizer.decode(ordinary), text);
  const auto some = tokenizer.encode(text, {im_end});
  EXPECT_EQ(std::count(some.begin(), some.end(), im_end), 1);
  EXPECT_EQ(std::count(some.begin(), some.end(), eos), 0);
  const auto all = tokenizer.encode(text, tokenizer.all_special_ids());
  EXPECT_EQ(all.back(), tokenizer.special_id("<|im_user|>"));
  EXPECT_EQ(tokenizer.decode(all), text);
}

TEST(Tokenizer, DecodeOfEncodeIsExactForArbitraryBytes) {
  const auto& tokenizer = asset_tokenizer();
  const NaiveBpe naive = naive_for(tokenizer);
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes(rng() % 600, '\0');
    for (auto& c : bytes) c = static_cast<char>(trial % 2 ? rng() % 256 : (rng() % 4 ? rng() % 128 : 128 + rng() % 128));
    const auto ids = tokenizer.encode(bytes);
    ASSERT_EQ(tokenizer.decode(ids), bytes) << "trial " << trial;
    if (trial < 100) {
      ASSERT_EQ(as_int(ids), naive.encode_ordinary(bytes)) << "trial " << trial;
    }
  }
}

TEST(Tokenizer, DecodeRejectsIdsOutsideTheVocabulary) {
  const auto& tokenizer = asset_tokenizer();
  expect_error([&] { tokenizer.decode({5, tokenizer.vocab_size()}); }, {"token id 4352", "position 1"});
  expect_error([&] { tokenizer.decode({-1}); }, {"token id -1", "position 0"});
}

TEST(Tokenizer, AssetTokenizerHasK2SpecialLayout) {
  const auto& tokenizer = asset_tokenizer();
  EXPECT_EQ(tokenizer.num_ranks(), 4096);
  EXPECT_EQ(tokenizer.vocab_size(), 4352);
  EXPECT_EQ(tokenizer.special_id("[BOS]"), 4096);
  EXPECT_EQ(tokenizer.special_id("[EOS]"), 4097);
  EXPECT_EQ(tokenizer.eos_id(), 4097);
  EXPECT_EQ(tokenizer.special_id("<|im_end|>"), 4098);
  EXPECT_EQ(tokenizer.special_id("<|im_middle|>"), 4096 + 17);
  EXPECT_EQ(tokenizer.special_id("<|reserved_token_4101|>"), 4101);
  EXPECT_EQ(tokenizer.special_tokens().size(), 256u);
}

TEST(Tokenizer, HashFollowsContentNotFileLayout) {
  const auto& tokenizer = asset_tokenizer();
  ScratchDir dir("tok-hash");
  tokenizer.save(dir / "copy");
  EXPECT_EQ(Tokenizer::load(dir / "copy").hash(), tokenizer.hash());
  auto specials = tokenizer.special_tokens();
  specials[0].content = "[START]";
  const Tokenizer other(tokenizer.tokens(), specials, tokenizer.pattern());
  EXPECT_NE(other.hash(), tokenizer.hash());
  EXPECT_EQ(tokenizer.hash().rfind("sha256:", 0), 0u);
}

// A minimal valid tokenizer directory (256 byte ranks) with `extra` lines appended to tiktoken.model.
std::string write_tokenizer_dir(const ScratchDir& dir, const std::string& name, const std::string& extra,
                                const std::string& config = R"({"added_tokens_decoder": {"300": {"content": "[EOS]"}}})") {
  const std::string path = dir / name;
  std::filesystem::create_directories(path);
  std::ofstream model(path + "/tiktoken.model", std::ios::binary);
  for (int b = 0; b < 256; ++b) model << base64_encode(std::string(1, static_cast<char>(b))) << " " << b << "\n";
  model << extra;
  model.close();
  std::ofstream(path + "/tokenizer_config.json") << config;
  return path;
}

TEST(Tokenizer, LoadsAMinimalDirectory) {
  ScratchDir dir("tok-min");
  const auto tokenizer = Tokenizer::load(write_tokenizer_dir(dir, "ok", base64_encode("ab") + " 256\n"));
  EXPECT_EQ(tokenizer.num_ranks(), 257);
  EXPECT_EQ(tokenizer.vocab_size(), 301);
  EXPECT_EQ(tokenizer.encode("abab"), (std::vector<int32_t>{256, 256}));
}

TEST(Tokenizer, MalformedFilesNameTheFileAndLine) {
  ScratchDir dir("tok-bad");
  expect_error([&] { Tokenizer::load(dir / "absent"); }, {"absent", "not a tokenizer directory"});
  expect_error([&] { Tokenizer::load(write_tokenizer_dir(dir, "dup", base64_encode("ab") + " 255\n")); },
               {"tiktoken.model:257", "duplicate rank 255", "line 256"});
  expect_error([&] { Tokenizer::load(write_tokenizer_dir(dir, "b64", "YW!= 256\n")); },
               {"tiktoken.model:257", "invalid base64"});
  expect_error([&] { Tokenizer::load(write_tokenizer_dir(dir, "rank", "YWI= x1\n")); },
               {"tiktoken.model:257", "non-negative integer rank"});
  expect_error([&] { Tokenizer::load(write_tokenizer_dir(dir, "fields", "YWI=\n")); },
               {"tiktoken.model:257", "expected \"<base64 bytes> <rank>\""});
  expect_error([&] { Tokenizer::load(write_tokenizer_dir(dir, "gap", "YWI= 300\n")); },
               {"tiktoken.model:257", "rank 300 is out of range", "0..256"});
  // Found while writing the fuzz targets: one huge rank used to size the table (gigabytes).
  expect_error([&] { Tokenizer::load(write_tokenizer_dir(dir, "huge", "YWI= 2000000000\n")); },
               {"tiktoken.model:257", "rank 2000000000 is out of range"});
  expect_error([&] {
    Tokenizer::load(write_tokenizer_dir(dir, "far", "", R"({"added_tokens_decoder": {"2000000000": {"content": "x"}}})"));
  }, {"has id 2000000000", "ids above the last rank 255"});
  expect_error([&] { Tokenizer::load(write_tokenizer_dir(dir, "same", base64_encode("a") + " 256\n")); },
               {"tiktoken.model:257", "same bytes as rank 97"});
  expect_error([&] { Tokenizer::load(write_tokenizer_dir(dir, "json", "", "{\"added_tokens_decoder\": ")); },
               {"tokenizer_config.json", "invalid JSON"});
  expect_error([&] {
    Tokenizer::load(write_tokenizer_dir(dir, "inside", "", R"({"added_tokens_decoder": {"10": {"content": "x"}}})"));
  }, {"has id 10, inside the ranks"});
  expect_error([&] {
    Tokenizer::load(write_tokenizer_dir(dir, "key", "", R"({"added_tokens_decoder": {"abc": {"content": "x"}}})"));
  }, {"added_tokens_decoder[\"abc\"]", "must be a token id"});
  const std::string no_model = write_tokenizer_dir(dir, "nomodel", "");
  std::filesystem::remove(no_model + "/tiktoken.model");
  expect_error([&] { Tokenizer::load(no_model); }, {"tiktoken.model", "cannot open"});
  const std::string no_config = write_tokenizer_dir(dir, "noconfig", "");
  std::filesystem::remove(no_config + "/tokenizer_config.json");
  expect_error([&] { Tokenizer::load(no_config); }, {"tokenizer_config.json", "missing"});
}

TEST(Tokenizer, MissingByteTokenIsAnError) {
  ScratchDir dir("tok-byte");
  const std::string path = dir / "t";
  std::filesystem::create_directories(path);
  std::ofstream model(path + "/tiktoken.model");
  for (int b = 1; b < 256; ++b) model << base64_encode(std::string(1, static_cast<char>(b))) << " " << b - 1 << "\n";
  model.close();
  std::ofstream(path + "/tokenizer_config.json") << "{}";
  expect_error([&] { Tokenizer::load(path); }, {"no token for the single byte 0x0"});
}

}  // namespace
}  // namespace k2f::data
