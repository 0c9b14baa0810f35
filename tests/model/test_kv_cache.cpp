// model/kv_cache.cpp and the cached forward (attention.cpp, kimi_model.cpp): 64 decode steps after
// a prefill give the logits of a full forward over the whole prefix (recompute, no cache); the
// absorbed and expanded forms agree; a prefill appended to a filled cache and left-padded rows
// are masked right; the cache holds kv_lora_rank + qk_rope_head_dim values per token and layer.
#include <gtest/gtest.h>

#include "model/kimi_model.h"
#include "model/kv_cache.h"
#include "test_util.h"
#include "tiny_config.h"

namespace k2f::model {
namespace {

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

KimiForCausalLM tiny_model(torch::ScalarType dtype, uint64_t seed) {
  KimiForCausalLM lm(testing::tiny_config());
  init_weights(lm, seed);
  if (dtype == torch::kFloat64) lm->to(torch::kFloat64);
  lm->compute_dtype = dtype;
  return lm;
}

// Prefill of `prompt_tokens`, then `steps` greedy decode steps through the cache; every step's
// logits are compared with the last position of a full forward over the sequence so far.
// Returns the largest deviation; also checks the prefill's logits.
double cached_vs_recompute(torch::ScalarType dtype, LatentAttention form, int64_t steps) {
  auto lm = tiny_model(dtype, 21);
  torch::NoGradGuard no_grad;
  torch::manual_seed(3);  // Debian's LibTorch seeds its default generator randomly
  const int64_t B = 2, prompt_tokens = 7;
  auto sequence_BT = torch::randint(lm->model->config.vocab_size, {B, prompt_tokens}, torch::kInt64);
  auto cache = lm->make_cache(B, prompt_tokens + steps);
  auto logits_BTV = lm->forward_cached(sequence_BT, cache, form);
  double worst = max_abs_diff(logits_BTV, lm->forward(sequence_BT));
  for (int64_t step = 0; step < steps; ++step) {
    const auto next_B1 = logits_BTV.select(1, logits_BTV.size(1) - 1).argmax(-1).unsqueeze(1);
    sequence_BT = torch::cat({sequence_BT, next_B1}, 1);
    logits_BTV = lm->forward_cached(next_B1, cache, form);
    const auto full_BTV = lm->forward(sequence_BT);
    worst = std::max(worst, max_abs_diff(logits_BTV.select(1, 0), full_BTV.select(1, full_BTV.size(1) - 1)));
  }
  EXPECT_EQ(cache.length(), prompt_tokens + steps);
  return worst;
}

TEST(KvCache, AbsorbedDecodeEqualsRecomputeFor64StepsFp32) {
  const double worst = cached_vs_recompute(torch::kFloat32, LatentAttention::kAbsorbed, 64);
  std::cout << "[ fp32 absorbed ] max |logit difference| over 64 steps = " << worst << "\n";
  EXPECT_LE(worst, 1e-5);
}

TEST(KvCache, ExpandedDecodeEqualsRecomputeFor64StepsFp32) {
  EXPECT_LE(cached_vs_recompute(torch::kFloat32, LatentAttention::kExpanded, 64), 1e-5);
}

TEST(KvCache, AbsorbedDecodeEqualsRecomputeInFp64) {
  EXPECT_LE(cached_vs_recompute(torch::kFloat64, LatentAttention::kAbsorbed, 24), 1e-11);
}

// Both forms side by side on the same token stream: absorbed equals expanded.
TEST(KvCache, AbsorbedEqualsExpandedForm) {
  for (const auto dtype : {torch::kFloat32, torch::kFloat64}) {
    auto lm = tiny_model(dtype, 8);
    torch::NoGradGuard no_grad;
    torch::manual_seed(4);
    const int64_t B = 3;
    auto absorbed = lm->make_cache(B, 40);
    auto expanded = lm->make_cache(B, 40);
    auto tokens_BT = torch::randint(lm->model->config.vocab_size, {B, 5}, torch::kInt64);
    double worst = 0;
    for (int64_t step = 0; step < 32; ++step) {
      const auto a_BTV = lm->forward_cached(tokens_BT, absorbed, LatentAttention::kAbsorbed);
      const auto e_BTV = lm->forward_cached(tokens_BT, expanded, LatentAttention::kExpanded);
      worst = std::max(worst, max_abs_diff(a_BTV, e_BTV));
      tokens_BT = a_BTV.select(1, a_BTV.size(1) - 1).argmax(-1).unsqueeze(1);
    }
    EXPECT_LE(worst, dtype == torch::kFloat64 ? 1e-12 : 1e-5) << dtype;
  }
}

// A weight rounded to a grid of 1/8: stands in for any kernel outside the model (QAT fake
// quantisation, packed INT4) that makes a Linear apply something other than its weight.
class RoundedWeightKernel : public LinearKernel {
 public:
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& weight) const override {
    return torch::matmul(x, (weight * 8).round().div(8).to(x.scalar_type()).t());
  }
};

// The absorbed form takes kv_b_proj's matrix from its kernel when it has one.
TEST(KvCache, AbsorbedFormFollowsALinearKernel) {
  auto lm = tiny_model(torch::kFloat64, 12);
  torch::NoGradGuard no_grad;
  torch::manual_seed(12);
  const auto tokens_BT = torch::randint(lm->model->config.vocab_size, {2, 6}, torch::kInt64);
  const auto plain_BTV = lm->forward(tokens_BT);
  for (auto& layer : lm->model->decoder_layers) layer->self_attn->kv_b_proj->kernel = std::make_shared<RoundedWeightKernel>();
  const auto rounded_BTV = lm->forward(tokens_BT);
  auto cache = lm->make_cache(2, 6);
  EXPECT_LE(max_abs_diff(lm->forward_cached(tokens_BT, cache, LatentAttention::kAbsorbed), rounded_BTV), 1e-11);
  EXPECT_GT(max_abs_diff(rounded_BTV, plain_BTV), 1e-4);  // the kernel matters
}

// A second prefill of several tokens appended to a filled cache sees the whole prefix and is
// causal within itself.
TEST(KvCache, PrefillAppendedToFilledCacheIsCausal) {
  auto lm = tiny_model(torch::kFloat64, 5);
  torch::NoGradGuard no_grad;
  torch::manual_seed(9);
  const auto tokens_BT = torch::randint(lm->model->config.vocab_size, {2, 12}, torch::kInt64);
  const auto full_BTV = lm->forward(tokens_BT);
  for (const auto form : {LatentAttention::kAbsorbed, LatentAttention::kExpanded}) {
    auto cache = lm->make_cache(2, 12);
    const auto first_BTV = lm->forward_cached(tokens_BT.narrow(1, 0, 5), cache, form);
    const auto second_BTV = lm->forward_cached(tokens_BT.narrow(1, 5, 4), cache, form);
    const auto third_BTV = lm->forward_cached(tokens_BT.narrow(1, 9, 3), cache, form);
    EXPECT_LE(max_abs_diff(torch::cat({first_BTV, second_BTV, third_BTV}, 1), full_BTV), 1e-11);
  }
}

// Rows of different lengths, left-padded: each equals its own unpadded forward, whatever the
// padding slots hold.
TEST(KvCache, LeftPaddedRowsEqualTheirUnpaddedForward) {
  auto lm = tiny_model(torch::kFloat64, 6);
  torch::NoGradGuard no_grad;
  torch::manual_seed(10);
  const int64_t V = lm->model->config.vocab_size;
  const auto short_1T = torch::randint(V, {1, 3}, torch::kInt64);
  const auto long_1T = torch::randint(V, {1, 8}, torch::kInt64);
  const auto padded_BT = torch::cat({torch::cat({torch::randint(V, {1, 5}, torch::kInt64), short_1T}, 1), long_1T}, 0);
  const auto decoded_B1 = torch::randint(V, {2, 1}, torch::kInt64);
  for (const auto form : {LatentAttention::kAbsorbed, LatentAttention::kExpanded}) {
    auto cache = lm->make_cache(2, 9);
    cache.set_row_starts(torch::tensor({5, 0}, torch::kInt64));
    const auto prefill_BTV = lm->forward_cached(padded_BT, cache, form);
    const auto step_BTV = lm->forward_cached(decoded_B1, cache, form);
    const auto short_full = lm->forward(torch::cat({short_1T, decoded_B1.narrow(0, 0, 1)}, 1));
    const auto long_full = lm->forward(torch::cat({long_1T, decoded_B1.narrow(0, 1, 1)}, 1));
    EXPECT_LE(max_abs_diff(prefill_BTV[0].narrow(0, 5, 3), short_full[0].narrow(0, 0, 3)), 1e-11);
    EXPECT_LE(max_abs_diff(step_BTV[0][0], short_full[0][3]), 1e-11);
    EXPECT_LE(max_abs_diff(prefill_BTV[1], long_full[0].narrow(0, 0, 8)), 1e-11);
    EXPECT_LE(max_abs_diff(step_BTV[1][0], long_full[0][8]), 1e-11);
    EXPECT_FALSE(prefill_BTV.isnan().any().item<bool>());  // padding queries stay finite
  }
}

TEST(KvCache, MaskOfAPrefillAfterCachedTokens) {
  const auto config = testing::tiny_config();
  KvCache cache(config, 2, 8, torch::kFloat32);
  cache.set_row_starts(torch::tensor({0, 2}, torch::kInt64));
  cache.advance(3);
  // Queries at slots 3 and 4 against keys 0..4; row 1's keys 0 and 1 are padding.
  const auto expected = torch::tensor({1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1}, torch::kBool)
                            .view({2, 2, 5});
  EXPECT_TRUE(torch::equal(cache.next_allowed(2), expected));
  EXPECT_TRUE(torch::equal(cache.next_positions(2), torch::tensor({3, 4, 1, 2}, torch::kInt64).view({2, 2})));
}

TEST(KvCache, BytesPerTokenPerLayerAreLatentPlusRopeKey) {
  auto config = testing::tiny_config();
  const KvCache fp32(config, 2, 10, torch::kFloat32);
  EXPECT_EQ(fp32.values_per_token_per_layer(), config.kv_lora_rank + config.qk_rope_head_dim);
  EXPECT_EQ(fp32.bytes_per_token_per_layer(), 4 * (16 + 4));
  EXPECT_EQ(fp32.allocated_bytes(), 4 * (16 + 4) * config.num_hidden_layers * 2 * 10);
  const KvCache bf16(config, 1, 4, torch::kBFloat16);
  EXPECT_EQ(bf16.bytes_per_token_per_layer(), 2 * (16 + 4));
  EXPECT_EQ(full_kv_values_per_token_per_layer(config), 2 * (8 + 4) + 2 * 8);
  // Kimi-K2: 512 + 64 = 576 values against 64*(128+64) + 64*128 = 20480.
  const auto k2 = kimi_k2_config();
  EXPECT_EQ(KvCache(k2, 1, 1, torch::kBFloat16).values_per_token_per_layer(), 576);
  EXPECT_EQ(full_kv_values_per_token_per_layer(k2), 20480);
}

TEST(KvCache, ErrorsNameTheValues) {
  auto lm = tiny_model(torch::kFloat32, 1);
  torch::NoGradGuard no_grad;
  auto cache = lm->make_cache(1, 6);
  lm->forward_cached(torch::zeros({1, 4}, torch::kInt64), cache);
  testing::expect_error([&] { lm->forward_cached(torch::zeros({1, 3}, torch::kInt64), cache); },
                        {"3 new tokens after 4 would exceed max_len 6"});
  EXPECT_EQ(cache.length(), 4);  // a refused step leaves the cache as it was
  testing::expect_error([&] { lm->forward_cached(torch::zeros({2, 1}, torch::kInt64), cache); },
                        {"2 rows for a KV cache of batch 1"});
  testing::expect_error([&] { cache.set_row_starts(torch::tensor({1}, torch::kInt64)); },
                        {"only be set while the cache is empty"});
  auto bf16 = KvCache(lm->model->config, 1, 4, torch::kBFloat16);
  testing::expect_error([&] { lm->forward_cached(torch::zeros({1, 1}, torch::kInt64), bf16); },
                        {"KV cache holds BFloat16 but the model computes in Float"});
}

}  // namespace
}  // namespace k2f::model
