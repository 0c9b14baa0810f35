// model/sampler.cpp: greedy is argmax, top-k 1 is greedy, top-p keeps exactly the expected tokens
// of a hand-built distribution, draws follow the sampled distribution, a seed reproduces a run,
// generate()'s log-probs equal log_softmax of a full forward over the generated sequence (issue 7
// acceptance 3), also with the routing it recorded replayed, and stop tokens end a row.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "model/routing_replay.h"
#include "model/sampler.h"
#include "test_util.h"
#include "tiny_config.h"

namespace k2f::model {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Logits whose softmax is `probs` exactly (up to rounding), one row.
torch::Tensor logits_of(const std::vector<double>& probs) {
  return torch::tensor(probs, torch::kFloat64).log().to(torch::kFloat32).unsqueeze(0);
}

std::vector<bool> kept(const torch::Tensor& sampling_logits_1V) {
  std::vector<bool> out;
  for (int64_t v = 0; v < sampling_logits_1V.size(1); ++v) out.push_back(sampling_logits_1V[0][v].item<double>() > -kInf);
  return out;
}

TEST(Sampler, GreedyIsArgmax) {
  torch::manual_seed(1);  // Debian's LibTorch seeds its default generator randomly
  const auto logits = torch::randn({5, 40});
  auto generator = make_generator(0);
  SamplingOptions greedy;
  greedy.temperature = 0;
  greedy.top_k = 3;  // no effect when greedy
  const auto s = sample_tokens(logits, greedy, generator);
  EXPECT_TRUE(torch::equal(s.tokens_B, logits.argmax(-1)));
  EXPECT_TRUE(torch::allclose(s.model_logprobs_B, std::get<0>(torch::log_softmax(logits, -1).max(-1))));
  EXPECT_TRUE(torch::equal(s.sampling_logprobs_B, torch::zeros({5})));
}

TEST(Sampler, TopKOneIsGreedy) {
  torch::manual_seed(2);
  const auto logits = torch::randn({6, 30});
  SamplingOptions top1;
  top1.temperature = 1.7;
  top1.top_k = 1;
  for (uint64_t seed = 0; seed < 4; ++seed) {
    auto generator = make_generator(seed);
    const auto s = sample_tokens(logits, top1, generator);
    EXPECT_TRUE(torch::equal(s.tokens_B, logits.argmax(-1))) << seed;
    EXPECT_LE(s.sampling_logprobs_B.abs().max().item<double>(), 1e-7);  // probability 1
  }
}

// probs 0.1, 0.5, 0.05, 0.2, 0.15 (shuffled so the sort matters): the top-p set is the fewest most
// likely tokens reaching mass p.
TEST(Sampler, TopPKeepsExactlyTheExpectedTokens) {
  const auto logits = logits_of({0.1, 0.5, 0.05, 0.2, 0.15});
  SamplingOptions options;
  options.temperature = 1.0;
  const auto keep = [&](double p, int64_t k) {
    options.top_p = p;
    options.top_k = k;
    return kept(sampling_logits(logits, options));
  };
  EXPECT_EQ(keep(1.0, 0), (std::vector<bool>{true, true, true, true, true}));
  EXPECT_EQ(keep(0.95, 0), (std::vector<bool>{true, true, false, true, true}));  // 0.5+0.2+0.15 = 0.85 < 0.95
  EXPECT_EQ(keep(0.75, 0), (std::vector<bool>{false, true, false, true, true}));
  EXPECT_EQ(keep(0.6, 0), (std::vector<bool>{false, true, false, true, false}));
  EXPECT_EQ(keep(0.4, 0), (std::vector<bool>{false, true, false, false, false}));
  // top-k first, then top-p on the renormalised rest: {0.5, 0.2} -> {0.714, 0.286}.
  EXPECT_EQ(keep(0.9, 2), (std::vector<bool>{false, true, false, true, false}));
  EXPECT_EQ(keep(0.7, 2), (std::vector<bool>{false, true, false, false, false}));

  // The sampling log-prob is renormalised over the kept set; the model log-prob is not.
  options.top_p = 0.75;
  options.top_k = 0;
  auto generator = make_generator(4);
  for (int trial = 0; trial < 20; ++trial) {
    const auto s = sample_tokens(logits, options, generator);
    const int64_t token = s.tokens_B[0].item<int64_t>();
    const double p = std::vector<double>{0.1, 0.5, 0.05, 0.2, 0.15}[static_cast<size_t>(token)];
    EXPECT_TRUE(token == 1 || token == 3 || token == 4) << token;
    EXPECT_NEAR(s.sampling_logprobs_B[0].item<double>(), std::log(p / 0.85), 1e-6);
    EXPECT_NEAR(s.model_logprobs_B[0].item<double>(), std::log(p), 1e-6);
  }
}

// 40000 draws of p = (0.5, 0.3, 0.2) at temperature 1 and 2 (p^(1/2) renormalised).
TEST(Sampler, DrawsFollowTheTemperedDistribution) {
  const auto logits = logits_of({0.5, 0.3, 0.2}).expand({40000, 3});
  for (const double temperature : {1.0, 2.0}) {
    SamplingOptions options;
    options.temperature = temperature;
    auto generator = make_generator(11);
    const auto tokens = sample_tokens(logits, options, generator).tokens_B;
    const auto expected = torch::tensor({0.5, 0.3, 0.2}, torch::kFloat64).pow(1.0 / temperature);
    const auto expected_p = expected / expected.sum();
    for (int64_t v = 0; v < 3; ++v) {
      const double frequency = (tokens == v).to(torch::kFloat64).mean().item<double>();
      EXPECT_NEAR(frequency, expected_p[v].item<double>(), 0.01) << "temperature " << temperature << " token " << v;
    }
  }
}

TEST(Sampler, SameSeedSameTokens) {
  torch::manual_seed(3);
  const auto logits = torch::randn({8, 100}) * 0.1;  // nearly uniform: many possible outcomes
  SamplingOptions options;
  options.top_p = 0.9;
  auto a = make_generator(42), b = make_generator(42), c = make_generator(43);
  const auto first = sample_tokens(logits, options, a).tokens_B;
  EXPECT_TRUE(torch::equal(first, sample_tokens(logits, options, b).tokens_B));
  EXPECT_FALSE(torch::equal(first, sample_tokens(logits, options, c).tokens_B));
}

KimiForCausalLM tiny_model(uint64_t seed) {
  KimiForCausalLM lm(testing::tiny_config());
  init_weights(lm, seed);
  return lm;
}

const std::vector<std::vector<int64_t>> kPrompts = {{3, 17, 40}, {5, 9, 2, 33, 61, 12}, {7, 7, 8, 1}};

// Issue 7 acceptance 3: the trainer's recomputed log-probs (a full forward, no cache, one row at a
// time, no padding) equal the sampler's for every sampled token; the sampling log-probs equal the
// tempered, truncated distribution of the same logits.
TEST(Generate, LogprobsEqualAFullForwardOverTheGeneratedSequence) {
  auto lm = tiny_model(13);
  GenerationOptions options;
  options.sampling.temperature = 0.8;
  options.sampling.top_k = 40;
  options.sampling.top_p = 0.95;
  options.max_new_tokens = 20;
  options.seed = 5;
  const auto rows = generate(lm, kPrompts, options);
  ASSERT_EQ(rows.size(), kPrompts.size());
  torch::NoGradGuard no_grad;
  double worst_model = 0, worst_sampling = 0;
  for (size_t b = 0; b < rows.size(); ++b) {
    const auto& row = rows[b];
    ASSERT_EQ(row.tokens.size(), 20u);
    EXPECT_EQ(row.finish, FinishReason::kLength);
    std::vector<int64_t> sequence = kPrompts[b];
    sequence.insert(sequence.end(), row.tokens.begin(), row.tokens.end());
    const auto tokens_1T = torch::tensor(sequence, torch::kInt64).unsqueeze(0);
    const auto logits_1TV = lm->forward(tokens_1T);
    const auto recomputed = next_token_logprobs(logits_1TV, tokens_1T)[0];
    const int64_t P = static_cast<int64_t>(kPrompts[b].size());
    const auto tempered_TV = torch::log_softmax(sampling_logits(logits_1TV[0], options.sampling), -1);
    for (size_t t = 0; t < row.tokens.size(); ++t) {
      const int64_t at = P - 1 + static_cast<int64_t>(t);
      worst_model = std::max(worst_model, std::abs(recomputed[at].item<double>() - row.model_logprobs[t]));
      const int64_t token = row.tokens[t];
      worst_sampling = std::max(worst_sampling, std::abs(tempered_TV[at][token].item<double>() - row.sampling_logprobs[t]));
    }
  }
  std::cout << "[ sampler vs trainer ] max |logprob difference| = " << worst_model << "\n";
  EXPECT_LE(worst_model, 1e-5);
  EXPECT_LE(worst_sampling, 1e-5);
}

// The largest |log-prob difference| between a row's generation and a full forward (one row, no
// cache) over its prompt and new tokens that replays the routing the row recorded.
double worst_replayed_difference(KimiForCausalLM& lm, const std::vector<int64_t>& prompt, const GeneratedSequence& row) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> sequence = prompt;
  sequence.insert(sequence.end(), row.tokens.begin(), row.tokens.end());
  const auto tokens_1T = torch::tensor(sequence, torch::kInt64).unsqueeze(0);
  RoutingReplay replay(*lm->model, row.experts_SMK);
  const auto recomputed = next_token_logprobs(lm->forward(tokens_1T), tokens_1T)[0];
  double worst = 0;
  for (size_t t = 0; t < row.tokens.size(); ++t) {
    const int64_t at = static_cast<int64_t>(prompt.size()) - 1 + static_cast<int64_t>(t);
    worst = std::max(worst, std::abs(recomputed[at].item<double>() - row.model_logprobs[t]));
  }
  return worst;
}

// Routing replay (issue 7 acceptance 3 on MoE models): generate() records the experts of every
// token it fed to the model, a full forward replaying them gives the sampler's log-probs, and a
// prefill handed another routing for the prompt (what a tool round hands back) routes to it.
TEST(Generate, RecordedRoutingReplayedInAFullForwardGivesTheSamplersLogprobs) {
  auto lm = tiny_model(13);
  const int64_t M = num_moe_layers(*lm->model), K = lm->model->config.num_experts_per_tok;
  GenerationOptions options;
  options.max_new_tokens = 12;
  options.seed = 5;
  options.record_routing = true;
  const auto rows = generate(lm, kPrompts, options);
  for (size_t b = 0; b < rows.size(); ++b) {
    const auto& experts = rows[b].experts_SMK;
    const int64_t S = static_cast<int64_t>(kPrompts[b].size() + rows[b].tokens.size());
    ASSERT_EQ(experts.sizes(), (std::vector<int64_t>{S, M, K}));
    EXPECT_TRUE((experts.narrow(0, 0, S - 1) >= 0).all().item<bool>()) << "row " << b;
    EXPECT_TRUE((experts[S - 1] == -1).all().item<bool>()) << "the last new token was never fed back";
    EXPECT_LE(worst_replayed_difference(lm, kPrompts[b], rows[b]), 1e-5) << "row " << b;
  }
  bool any_logprob_moved = false;
  for (size_t b = 0; b < rows.size(); ++b) {
    const int64_t P = static_cast<int64_t>(kPrompts[b].size());
    options.prompt_experts.push_back(((rows[b].experts_SMK.narrow(0, 0, P).to(torch::kInt64) + 3) % 8).to(kExpertIdDtype));
  }
  const auto forced = generate(lm, kPrompts, options);
  for (size_t b = 0; b < rows.size(); ++b) {
    const int64_t P = static_cast<int64_t>(kPrompts[b].size());
    EXPECT_TRUE(torch::equal(forced[b].experts_SMK.narrow(0, 0, P), options.prompt_experts[b])) << "row " << b;
    EXPECT_LE(worst_replayed_difference(lm, kPrompts[b], forced[b]), 1e-5) << "row " << b;
    any_logprob_moved = any_logprob_moved || std::abs(forced[b].model_logprobs[0] - rows[b].model_logprobs[0]) > 1e-4;
  }
  EXPECT_TRUE(any_logprob_moved);
  options.prompt_experts.pop_back();
  testing::expect_error([&] { generate(lm, kPrompts, options); }, {"2 prompt routings for 3 prompts"});
}

TEST(Generate, SameSeedSameOutputAndBothFormsAgree) {
  auto lm = tiny_model(14);
  GenerationOptions options;
  options.max_new_tokens = 12;
  options.seed = 99;
  const auto a = generate(lm, kPrompts, options);
  const auto b = generate(lm, kPrompts, options);
  options.attention = LatentAttention::kExpanded;
  const auto expanded = generate(lm, kPrompts, options);
  options.attention = LatentAttention::kAbsorbed;
  options.seed = 100;
  const auto other = generate(lm, kPrompts, options);
  bool any_different = false;
  for (size_t r = 0; r < kPrompts.size(); ++r) {
    EXPECT_EQ(a[r].tokens, b[r].tokens);
    EXPECT_EQ(a[r].model_logprobs, b[r].model_logprobs);
    EXPECT_EQ(a[r].tokens, expanded[r].tokens);
    any_different = any_different || a[r].tokens != other[r].tokens;
  }
  EXPECT_TRUE(any_different);
}

// With row seeds a row's tokens depend only on its prompt and seed: the batch of three gives each
// row what it gets alone (data-parallel RL splits batches and must sample the same). The tiny
// model's logits come out alike for a row alone and in the batch (checked here), so any
// difference would be the sampling's.
TEST(Generate, RowSeedsMakeEachRowIndependentOfItsBatch) {
  auto lm = tiny_model(16);
  GenerationOptions options;
  options.max_new_tokens = 10;
  options.row_seeds = {11, 22, 33};
  const auto together = generate(lm, kPrompts, options);
  for (size_t r = 0; r < kPrompts.size(); ++r) {
    GenerationOptions alone = options;
    alone.row_seeds = {options.row_seeds[r]};
    const auto single = generate(lm, {kPrompts[r]}, alone);
    EXPECT_EQ(single[0].tokens, together[r].tokens) << "row " << r;
    for (size_t t = 0; t < single[0].model_logprobs.size(); ++t)
      EXPECT_NEAR(single[0].model_logprobs[t], together[r].model_logprobs[t], 1e-5) << "row " << r << " token " << t;
  }
  options.row_seeds = {11, 22};
  testing::expect_error([&] { generate(lm, kPrompts, options); }, {"2 row seeds for 3 prompts"});
}

// A row ends right after its first stop token; the others go on; generation ends when all have.
TEST(Generate, StopTokensEndARow) {
  auto lm = tiny_model(15);
  GenerationOptions options;
  options.sampling.temperature = 0;
  options.max_new_tokens = 12;
  const auto free_rows = generate(lm, kPrompts, options);
  const int64_t stop = free_rows[0].tokens[4];
  options.stop_token_ids = {stop};
  std::vector<std::vector<int64_t>> streamed;
  const auto rows = generate(lm, kPrompts, options, [&](const std::vector<int64_t>& tokens_B) { streamed.push_back(tokens_B); });
  size_t longest = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto& all = free_rows[r].tokens;
    const auto first = std::find(all.begin(), all.end(), stop);
    const std::vector<int64_t> expected(all.begin(), first == all.end() ? all.end() : first + 1);
    EXPECT_EQ(rows[r].tokens, expected) << "row " << r;
    EXPECT_EQ(rows[r].finish, first == all.end() ? FinishReason::kLength : FinishReason::kStop) << "row " << r;
    EXPECT_EQ(rows[r].model_logprobs.size(), expected.size());
    longest = std::max(longest, expected.size());
    for (size_t step = 0; step < streamed.size(); ++step) {
      EXPECT_EQ(streamed[step][r], step < expected.size() ? expected[step] : -1) << "row " << r << " step " << step;
    }
  }
  EXPECT_EQ(rows[0].finish, FinishReason::kStop);
  EXPECT_LE(rows[0].tokens.size(), 5u);
  EXPECT_EQ(streamed.size(), longest);

  // Every row stopping ends generation at once.
  options.stop_token_ids.clear();
  for (const auto& row : free_rows) options.stop_token_ids.push_back(row.tokens[0]);
  EXPECT_EQ(generate(lm, kPrompts, options)[0].tokens.size(), 1u);
}

TEST(Generate, BadOptionsAndPromptsNameTheValue) {
  auto lm = tiny_model(16);
  GenerationOptions options;
  options.sampling.temperature = -0.5;
  testing::expect_error([&] { generate(lm, kPrompts, options); }, {"sampling.temperature (-0.5) must be >= 0"});
  options.sampling.temperature = 1;
  options.sampling.top_p = 1.5;
  testing::expect_error([&] { generate(lm, kPrompts, options); }, {"sampling.top_p (1.5) must be in (0, 1]"});
  options.sampling.top_p = 1;
  options.sampling.top_k = -2;
  testing::expect_error([&] { generate(lm, kPrompts, options); }, {"sampling.top_k (-2) must be >= 0"});
  options.sampling.top_k = 0;
  options.max_new_tokens = 0;
  testing::expect_error([&] { generate(lm, kPrompts, options); }, {"max_new_tokens (0) must be positive"});
  options.max_new_tokens = 4;
  testing::expect_error([&] { generate(lm, {{1, 2}, {3, 64}}, options); },
                        {"prompt 1 holds token id 64 outside the vocabulary [0, 64)"});
  testing::expect_error([&] { generate(lm, {{1, 2}, {}}, options); }, {"prompt 1 is empty"});
  const int64_t positions = lm->model->config.max_position_embeddings;
  options.max_new_tokens = positions - 5;  // the longest prompt has 6 tokens
  testing::expect_error([&] { generate(lm, kPrompts, options); },
                        {"the longest prompt (6 tokens) plus " + std::to_string(positions - 5) +
                             " new tokens exceed the model's max_position_embeddings (" + std::to_string(positions) +
                             "): at most " + std::to_string(positions - 6) + " new tokens fit"});
}

}  // namespace
}  // namespace k2f::model
