// Tests of data/bpe_trainer.cpp: merges worked out by hand (highest count, ties to the smallest
// left id), identical files from two runs and from any document order, and K2's special-token
// layout after the ranks.
#include <gtest/gtest.h>

#include <filesystem>

#include "base/json_io.h"
#include "data/bpe_trainer.h"
#include "test_util.h"

namespace k2f::data {
namespace {

using testing::ScratchDir;

Tokenizer train(const std::vector<std::string>& texts, int64_t vocab_size) {
  BpeTrainerOptions options;
  options.vocab_size = vocab_size;
  BpeTrainer trainer(options);
  for (const auto& t : texts) trainer.add_text(t);
  return trainer.train();
}

TEST(BpeTrainer, MergesByCountThenSmallestIds) {
  // Pieces "ab", " ab", " ab", " cd". Counts: (a,b) 3 -> "ab"; then (" ",ab) 2 -> " ab"; then
  // (" ",c) and (c,d) tie at 1: the smaller left id (32 < 99) wins -> " c"; then " cd".
  const auto tokenizer = train({"ab ab ab cd"}, 256 + 4 + 256);
  ASSERT_EQ(tokenizer.num_ranks(), 260);
  EXPECT_EQ(tokenizer.tokens()[256], "ab");
  EXPECT_EQ(tokenizer.tokens()[257], " ab");
  EXPECT_EQ(tokenizer.tokens()[258], " c");
  EXPECT_EQ(tokenizer.tokens()[259], " cd");
  for (int b = 0; b < 256; ++b) EXPECT_EQ(tokenizer.tokens()[b], std::string(1, static_cast<char>(b)));
  EXPECT_EQ(tokenizer.encode("ab ab cd"), (std::vector<int32_t>{256, 257, 259}));
}

TEST(BpeTrainer, StopsWhenNoPairIsLeftAndKeepsSpecialsAfterTheRanks) {
  const auto tokenizer = train({"ab ab ab cd"}, 4352);
  EXPECT_EQ(tokenizer.num_ranks(), 260);
  EXPECT_EQ(tokenizer.vocab_size(), 260 + 256);
  EXPECT_EQ(tokenizer.special_id("[BOS]"), 260);
  EXPECT_EQ(tokenizer.eos_id(), 261);
  EXPECT_EQ(tokenizer.special_id("<|im_end|>"), 262);
  EXPECT_EQ(tokenizer.special_id("<|im_user|>"), 263);
  EXPECT_EQ(tokenizer.special_id("<|im_assistant|>"), 264);
  EXPECT_EQ(tokenizer.special_id("<|reserved_token_265|>"), 265);
  EXPECT_EQ(tokenizer.special_id("<|start_header_id|>"), 266);
  EXPECT_EQ(tokenizer.special_id("[EOT]"), 269);
  EXPECT_EQ(tokenizer.special_id("<|im_system|>"), 270);
  EXPECT_EQ(tokenizer.special_id("<|tool_calls_section_begin|>"), 271);
  EXPECT_EQ(tokenizer.special_id("<|tool_call_end|>"), 275);
  EXPECT_EQ(tokenizer.special_id("<|im_middle|>"), 277);
  EXPECT_EQ(tokenizer.special_id("<think>"), 282);
  EXPECT_EQ(tokenizer.special_id("</think>"), 283);
  EXPECT_EQ(tokenizer.special_id("<|reserved_token_515|>"), 515);
}

TEST(BpeTrainer, TrainingIsReproducibleAndOrderIndependent) {
  const std::vector<std::string> texts = {"The quick brown fox jumps over the lazy dog. ",
                                          "Pack my box with five dozen liquor jugs! 12345 67890",
                                          "日本語のテキストと English text, naïve café.\n\n  indented",
                                          "the the the then there their they're"};
  ScratchDir dir("trainer");
  train(texts, 600).save(dir / "a");
  train(texts, 600).save(dir / "b");
  train({texts[3], texts[1], texts[0], texts[2]}, 600).save(dir / "c");
  for (const char* file : {"tiktoken.model", "tokenizer_config.json", "pattern.txt"}) {
    const std::string a = read_text_file(dir / "a/" + file);
    EXPECT_EQ(a, read_text_file(dir / "b/" + file)) << file;
    EXPECT_EQ(a, read_text_file(dir / "c/" + file)) << file;
  }
  const auto loaded = Tokenizer::load(dir / "a");
  EXPECT_EQ(loaded.num_ranks(), 600 - 256);
  for (const auto& t : texts) EXPECT_EQ(loaded.decode(loaded.encode(t)), t);
}

TEST(BpeTrainer, RejectsTooSmallVocabularies) {
  BpeTrainerOptions options;
  options.vocab_size = 300;
  testing::expect_error([&] { BpeTrainer trainer(options); }, {"--vocab-size (300) must be at least 512"});
}

}  // namespace
}  // namespace k2f::data
