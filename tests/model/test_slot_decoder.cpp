// model/slot_decoder.cpp: a turn in a slot samples what model::generate samples for the same
// context and seed; slots decoded together, refilled while others run, sample what each does
// alone; a turn begun after another (tool results appended) equals generating on the whole
// context; the recorded routing replays to the sampler's log-probs; a turn without room ends at
// once. Also the ragged KV cache the decoder runs on (model/kv_cache.cpp): rows of different
// lengths give the logits of each row's own full forward.
#include <gtest/gtest.h>

#include <map>

#include "model/routing_replay.h"
#include "model/slot_decoder.h"
#include "test_util.h"
#include "tiny_config.h"

namespace k2f::model {
namespace {

KimiForCausalLM slot_test_model(uint64_t seed) {
  KimiForCausalLM lm(testing::tiny_config());
  init_weights(lm, seed);
  lm->eval();
  return lm;
}

const std::vector<std::vector<int64_t>> kSlotPrompts = {
    {3, 17, 40}, {5, 9, 2, 33, 61, 12}, {7, 7, 8, 1}, {60, 2}, {11, 12, 13, 14, 15, 16, 17}, {9}};

SlotDecoderOptions sampling_options(std::vector<int64_t> stops = {}) {
  SlotDecoderOptions options;
  options.sampling.temperature = 0.9;
  options.stop_token_ids = std::move(stops);
  return options;
}

// One turn per prompt through `slots` slots, refilled in prompt order as turns end.
std::vector<GeneratedSequence> turns_through(KimiForCausalLM lm, int64_t slots, const SlotDecoderOptions& options,
                                             const std::vector<int64_t>& budgets) {
  SlotDecoder decoder(lm, slots, options);
  std::vector<GeneratedSequence> out(kSlotPrompts.size());
  std::map<int64_t, size_t> prompt_in_slot;
  size_t next = 0;
  const auto refill = [&](int64_t slot) {
    if (next == kSlotPrompts.size()) return;
    prompt_in_slot[slot] = next;
    decoder.begin_turn(slot, kSlotPrompts[next], /*fresh=*/true, budgets[next], 100 + next);
    ++next;
  };
  for (int64_t s = 0; s < slots; ++s) refill(s);
  for (auto ended = decoder.decode_until_a_turn_ends(); !ended.empty(); ended = decoder.decode_until_a_turn_ends()) {
    for (auto& [slot, turn] : ended) {
      out[prompt_in_slot.at(slot)] = std::move(turn);
      refill(slot);
    }
  }
  return out;
}

TEST(SlotDecoder, ATurnSamplesWhatGenerateSamplesForTheSameSeed) {
  auto lm = slot_test_model(21);
  for (size_t p = 0; p < kSlotPrompts.size(); ++p) {
    GenerationOptions generation;
    generation.sampling.temperature = 0.9;
    generation.max_new_tokens = 9;
    generation.row_seeds = {100 + p};
    const auto expected = generate(lm, {kSlotPrompts[p]}, generation).at(0);
    SlotDecoder decoder(lm, 1, sampling_options());
    decoder.begin_turn(0, kSlotPrompts[p], true, 9, 100 + p);
    auto ended = decoder.decode_until_a_turn_ends();
    ASSERT_EQ(ended.size(), 1u);
    EXPECT_EQ(ended[0].second.tokens, expected.tokens) << "prompt " << p;
    for (size_t t = 0; t < expected.tokens.size(); ++t)
      EXPECT_NEAR(ended[0].second.model_logprobs[t], expected.model_logprobs[t], 1e-5);
    EXPECT_EQ(ended[0].second.finish, FinishReason::kLength);
    EXPECT_TRUE(decoder.decode_until_a_turn_ends().empty());
  }
}

// Continuous batching's contract: 2 slots refilled as turns of different lengths end (stop tokens
// and budgets) sample exactly what each prompt samples alone in one slot.
TEST(SlotDecoder, SlotsRefilledWhileOthersRunSampleWhatEachSamplesAlone) {
  auto lm = slot_test_model(22);
  const auto options = sampling_options({5, 17, 40});
  const std::vector<int64_t> budgets = {12, 3, 20, 7, 16, 1};
  const auto together = turns_through(lm, 2, options, budgets);
  const auto alone = turns_through(lm, 1, options, budgets);
  bool any_stopped = false, any_long = false;
  for (size_t p = 0; p < kSlotPrompts.size(); ++p) {
    EXPECT_EQ(together[p].tokens, alone[p].tokens) << "prompt " << p;
    EXPECT_EQ(together[p].finish, alone[p].finish) << "prompt " << p;
    ASSERT_EQ(together[p].model_logprobs.size(), alone[p].model_logprobs.size());
    for (size_t t = 0; t < alone[p].model_logprobs.size(); ++t)
      EXPECT_NEAR(together[p].model_logprobs[t], alone[p].model_logprobs[t], 1e-5) << "prompt " << p << " token " << t;
    EXPECT_LE(static_cast<int64_t>(together[p].tokens.size()), budgets[p]);
    any_stopped = any_stopped || together[p].finish == FinishReason::kStop;
    any_long = any_long || together[p].tokens.size() > 6;
  }
  EXPECT_TRUE(any_stopped) << "the stop tokens should end some turn early (else the test shows less)";
  EXPECT_TRUE(any_long);
}

// A second turn after appended tokens (a tool result) sees the slot's whole sequence: it samples
// what generate() samples on the concatenated context, and the slot's routing, replayed in one
// full forward, gives every sampled token's log-prob.
TEST(SlotDecoder, ATurnAfterAppendedTokensEqualsGeneratingOnTheWholeContext) {
  auto lm = slot_test_model(23);
  auto options = sampling_options();
  options.record_routing = true;
  SlotDecoder decoder(lm, 3, options);
  decoder.begin_turn(1, kSlotPrompts[1], true, 5, 7);
  decoder.begin_turn(2, kSlotPrompts[4], true, 11, 8);  // keeps decoding while slot 1 changes turns
  auto first = decoder.decode_until_a_turn_ends();
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(first[0].first, 1);
  const auto turn1 = first[0].second;
  const std::vector<int64_t> appended = {turn1.tokens.back(), 44, 45, 46};  // the unfed last token leads
  EXPECT_EQ(decoder.held_tokens(1), static_cast<int64_t>(kSlotPrompts[1].size() + turn1.tokens.size() - 1));
  decoder.begin_turn(1, appended, false, 6, 9);
  GeneratedSequence turn2;
  for (auto ended = decoder.decode_until_a_turn_ends(); !ended.empty(); ended = decoder.decode_until_a_turn_ends())
    for (auto& [slot, turn] : ended)
      if (slot == 1) turn2 = std::move(turn);
  ASSERT_EQ(turn2.tokens.size(), 6u);

  std::vector<int64_t> context = kSlotPrompts[1];
  context.insert(context.end(), turn1.tokens.begin(), turn1.tokens.end() - 1);
  context.insert(context.end(), appended.begin(), appended.end());
  GenerationOptions generation;
  generation.sampling = options.sampling;
  generation.max_new_tokens = 6;
  generation.row_seeds = {9};
  const auto expected = generate(lm, {context}, generation).at(0);
  EXPECT_EQ(turn2.tokens, expected.tokens);

  const int64_t S = static_cast<int64_t>(context.size() + turn2.tokens.size());
  ASSERT_EQ(turn2.experts_SMK.size(0), S);
  EXPECT_TRUE((turn2.experts_SMK.narrow(0, 0, S - 1) >= 0).all().item<bool>());
  EXPECT_TRUE((turn2.experts_SMK[S - 1] == -1).all().item<bool>());
  torch::NoGradGuard no_grad;
  std::vector<int64_t> sequence = context;
  sequence.insert(sequence.end(), turn2.tokens.begin(), turn2.tokens.end());
  const auto tokens_1T = torch::tensor(sequence, torch::kInt64).unsqueeze(0);
  RoutingReplay replay(*lm->model, turn2.experts_SMK);
  const auto recomputed = next_token_logprobs(lm->forward(tokens_1T), tokens_1T)[0];
  for (size_t t = 0; t < turn2.tokens.size(); ++t)
    EXPECT_NEAR(recomputed[static_cast<int64_t>(context.size()) - 1 + static_cast<int64_t>(t)].item<double>(),
                turn2.model_logprobs[t], 1e-5);
}

TEST(SlotDecoder, ATurnWithoutRoomEndsAtOnceAndBadCallsNameTheProblem) {
  auto config = testing::tiny_config();
  config.max_position_embeddings = 10;
  KimiForCausalLM lm(config);
  init_weights(lm, 3);
  SlotDecoder decoder(lm, 2, sampling_options());
  decoder.begin_turn(0, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, true, 4, 1);  // fills every position
  decoder.begin_turn(1, {1, 2, 3, 4, 5, 6, 7}, true, 8, 2);           // room for 3
  std::map<int64_t, GeneratedSequence> turns;
  for (auto ended = decoder.decode_until_a_turn_ends(); !ended.empty(); ended = decoder.decode_until_a_turn_ends())
    for (auto& [slot, turn] : ended) turns[slot] = std::move(turn);
  EXPECT_TRUE(turns.at(0).tokens.empty());
  EXPECT_EQ(turns.at(0).finish, FinishReason::kLength);
  EXPECT_EQ(turns.at(1).tokens.size(), 3u);
  testing::expect_error([&] { decoder.begin_turn(0, {1}, false, 2, 1); }, {"slot 0", "begin it fresh"});
  decoder.begin_turn(0, {1}, true, 2, 1);
  testing::expect_error([&] { decoder.begin_turn(0, {1}, true, 2, 1); }, {"slot 0 already runs a turn"});
  testing::expect_error([&] { decoder.begin_turn(1, {64}, true, 2, 1); }, {"token id 64", "[0, 64)"});
  testing::expect_error([&] { decoder.begin_turn(5, {1}, true, 2, 1); }, {"slot 5 outside [0, 2)"});
  testing::expect_error([&] { SlotDecoder(lm, 0, sampling_options()); }, {"slots (0) must be positive"});
}

// The ragged cache: rows holding 3, 6 and 1 tokens, each then fed its next tokens through row
// views and one batched step, give the logits of that row's full forward.
TEST(KvCacheRows, RowsOfDifferentLengthsGiveEachRowsOwnLogits) {
  auto lm = slot_test_model(24);
  torch::NoGradGuard no_grad;
  const std::vector<std::vector<int64_t>> rows = {{3, 17, 40, 8}, {5, 9, 2, 33, 61, 12, 30}, {7, 2}};
  auto cache = lm->make_cache(3, 4);  // grows on the way
  for (int64_t b = 0; b < 3; ++b) {
    const auto& row = rows[static_cast<size_t>(b)];
    const int64_t n = static_cast<int64_t>(row.size()) - 1;
    cache.reserve(std::max<int64_t>(cache.max_len(), n + 1));
    auto view = cache.row(b);
    lm->forward_cached(torch::tensor(std::vector<int64_t>(row.begin(), row.end() - 1)).view({1, n}), view);
    EXPECT_EQ(cache.row_length(b), n);
  }
  std::vector<int64_t> last;
  for (const auto& row : rows) last.push_back(row.back());
  const auto stepped_BV = lm->forward_cached(torch::tensor(last).view({3, 1}), cache).select(1, 0);
  for (int64_t b = 0; b < 3; ++b) {
    const auto& row = rows[static_cast<size_t>(b)];
    const auto full_V = lm->forward(torch::tensor(row).view({1, -1}))[0][static_cast<int64_t>(row.size()) - 1];
    EXPECT_LE((stepped_BV[b] - full_V).abs().max().item<double>(), 1e-5) << "row " << b;
    EXPECT_EQ(cache.row_length(b), static_cast<int64_t>(row.size()));
  }
  cache.reset_row(1);
  EXPECT_EQ(cache.row_length(1), 0);
  EXPECT_EQ(cache.length(), 4);
  testing::expect_error([&] { cache.truncate_row(0, 9); }, {"row 0 holds 4 slots; cannot keep 9"});
}

}  // namespace
}  // namespace k2f::model
