// model/kimi_model.cpp: HF parameter names, an fp64 finite-difference gradient check of the whole
// model, bf16 compute against fp32 within a stated tolerance, and document masking.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "model/kimi_model.h"
#include "tiny_config.h"

namespace k2f::model {
namespace {

double mean_nll(KimiForCausalLM& lm, const torch::Tensor& tokens) {
  return -next_token_logprobs(lm->forward(tokens), tokens).mean().item<double>();
}

TEST(KimiModel, ParametersCarryHfNames) {
  KimiForCausalLM lm(testing::tiny_config());
  std::set<std::string> names;
  for (const auto& [name, t] : named_state(*lm)) names.insert(name);
  for (const char* expected :
       {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight", "model.layers.0.mlp.gate_proj.weight",
        "model.layers.0.self_attn.q_a_proj.weight", "model.layers.0.self_attn.q_a_layernorm.weight",
        "model.layers.0.self_attn.kv_a_proj_with_mqa.weight", "model.layers.1.mlp.gate.weight",
        "model.layers.1.mlp.gate.e_score_correction_bias", "model.layers.1.mlp.experts.7.down_proj.weight",
        "model.layers.1.mlp.shared_experts.up_proj.weight", "model.layers.1.post_attention_layernorm.weight"}) {
    EXPECT_TRUE(names.count(expected)) << expected;
  }
  EXPECT_FALSE(names.count("model.layers.1.mlp.gate_proj.weight"));  // MoE layer has no dense MLP
}

TEST(KimiModel, FiniteDifferenceGradientInFp64) {
  auto config = testing::tiny_config();
  KimiForCausalLM lm(config);
  init_weights(lm, 11);
  lm->to(torch::kFloat64);
  lm->compute_dtype = torch::kFloat64;
  torch::manual_seed(5);  // Debian's LibTorch seeds its default generator randomly
  {
    torch::NoGradGuard no_grad;  // non-zero correction biases so the bias path is exercised
    for (auto& [name, t] : named_state(*lm))
      if (name.find("e_score_correction_bias") != std::string::npos) t.uniform_(-0.05, 0.05);
  }
  const auto tokens = torch::randint(config.vocab_size, {2, 9}, torch::kInt64);
  lm->zero_grad();
  const auto loss = -next_token_logprobs(lm->forward(tokens), tokens).mean();
  loss.backward();

  // Directional derivative along a random direction over all parameters.
  std::vector<torch::Tensor> params, directions;
  double analytic = 0;
  for (auto& p : lm->parameters()) {
    auto v = torch::randn_like(p);
    // An expert no token reached has no gradient: its true gradient is zero.
    if (p.grad().defined()) analytic += (p.grad() * v).sum().item<double>();
    params.push_back(p);
    directions.push_back(v);
  }
  const double eps = 1e-6;
  auto shifted_loss = [&](double step) {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) params[i].add_(directions[i], step);
    const double value = mean_nll(lm, tokens);
    for (size_t i = 0; i < params.size(); ++i) params[i].sub_(directions[i], step);
    return value;
  };
  const double numeric = (shifted_loss(eps) - shifted_loss(-eps)) / (2 * eps);
  EXPECT_NEAR(analytic, numeric, 1e-6 * std::max(1.0, std::abs(numeric)));
  EXPECT_GT(std::abs(analytic), 1e-3);

  // And entry by entry for parameters in each block.
  for (const char* name : {"model.layers.0.self_attn.q_b_proj.weight", "model.layers.1.self_attn.kv_b_proj.weight",
                           "model.layers.1.mlp.gate.weight", "model.layers.1.mlp.shared_experts.down_proj.weight",
                           "model.layers.0.input_layernorm.weight", "model.embed_tokens.weight"}) {
    auto p = lm->named_parameters()[name];
    auto flat = p.data().view({-1});
    const auto grad = p.grad().view({-1});
    const int64_t i = flat.numel() / 3;
    const double saved = flat[i].item<double>();
    torch::NoGradGuard no_grad;
    flat[i] = saved + eps;
    const double plus = mean_nll(lm, tokens);
    flat[i] = saved - eps;
    const double minus = mean_nll(lm, tokens);
    flat[i] = saved;
    EXPECT_NEAR(grad[i].item<double>(), (plus - minus) / (2 * eps), 1e-7) << name;
  }
}

// bf16 activations (fp32 masters, fp32 norms/router/softmax) against fp32 on the same weights.
// Tolerance: per-token log-prob within 0.05 nats and mean NLL within 0.5%.
TEST(KimiModel, Bf16ComputeAgreesWithFp32) {
  auto config = testing::tiny_config();
  config.initializer_range = 0.05;
  KimiForCausalLM lm(config);
  init_weights(lm, 2);
  torch::manual_seed(6);
  const auto tokens = torch::randint(config.vocab_size, {3, 24}, torch::kInt64);
  torch::NoGradGuard no_grad;
  const auto lp32 = next_token_logprobs(lm->forward(tokens), tokens);
  lm->compute_dtype = torch::kBFloat16;
  const auto lp16 = next_token_logprobs(lm->forward(tokens), tokens);
  EXPECT_LT((lp32 - lp16).abs().max().item<double>(), 0.05);
  EXPECT_LT(std::abs(lp32.mean().item<double>() / lp16.mean().item<double>() - 1), 0.005);
}

TEST(KimiModel, SegmentsDoNotSeeEachOther) {
  const auto config = testing::tiny_config();
  KimiForCausalLM lm(config);
  init_weights(lm, 4);
  torch::NoGradGuard no_grad;
  const auto first = torch::randint(config.vocab_size, {1, 5}, torch::kInt64);
  const auto second = torch::randint(config.vocab_size, {1, 7}, torch::kInt64);
  const auto packed = torch::cat({first, second}, 1);
  const auto segments = torch::cat({torch::zeros({1, 5}), torch::ones({1, 7})}, 1).to(torch::kInt64);
  const auto positions = torch::cat({torch::arange(5), torch::arange(7)}).unsqueeze(0);
  const auto logits_packed = lm->forward(ForwardInputs{packed, positions, segments});
  const auto logits_alone = lm->forward(second);
  EXPECT_TRUE(torch::allclose(logits_packed.narrow(1, 5, 7), logits_alone, 1e-5, 1e-5));
}

// Expert parallelism builds each rank's model with a slice of the experts; seeded initialisation
// must give every tensor it holds the full model's values (each tensor has its own generator).
TEST(KimiModel, ExpertSliceInitialisesLikeTheFullModel) {
  const auto config = testing::tiny_config();
  KimiForCausalLM full(config), slice(config, ExpertSlice{4, 4});
  init_weights(full, 21);
  init_weights(slice, 21);
  std::map<std::string, torch::Tensor> reference;
  for (const auto& [name, t] : named_state(*full)) reference[name] = t;
  size_t experts = 0;
  for (const auto& [name, t] : named_state(*slice)) {
    ASSERT_TRUE(reference.count(name)) << name;
    EXPECT_TRUE(torch::equal(t, reference[name])) << name;
    experts += name.find("mlp.experts.") != std::string::npos;
  }
  EXPECT_GT(experts, 0u);
  EXPECT_FALSE(named_state(*slice).empty());
  EXPECT_LT(named_state(*slice).size(), reference.size());
  for (const auto& [name, t] : named_state(*slice)) EXPECT_EQ(name.find("mlp.experts.0."), std::string::npos) << name;
}

}  // namespace
}  // namespace k2f::model
