// train/rl/objectives.cpp against hand-computed values, including the PMD-mean gradient.
#include <gtest/gtest.h>

#include <cmath>

#include "base/error.h"
#include "train/rl/objectives.h"

namespace k2f::train::rl {
namespace {

torch::Tensor t(std::vector<double> values, int64_t rows) {
  return torch::tensor(values, torch::kFloat64).view({rows, -1});
}

TEST(Objectives, GroupBaselinesAndAdvantages) {
  const std::vector<double> r = {1, 0, 0.5, 0.5};
  const auto b = group_mean_baselines(r, 2);
  EXPECT_TRUE(torch::allclose(b, torch::tensor({0.5, 0.5, 0.5, 0.5}, torch::kFloat64)));
  const auto a = group_normalised_advantages(r, 2, 0.0 + 1e-12);
  EXPECT_NEAR(a[0].item<double>(), 1.0, 1e-9);   // (1 - 0.5) / 0.5
  EXPECT_NEAR(a[1].item<double>(), -1.0, 1e-9);
  EXPECT_NEAR(a[2].item<double>(), 0.0, 1e-9);   // equal rewards: no signal
  EXPECT_THROW(group_mean_baselines(r, 3), Error);
}

TEST(Objectives, PmdMeanMatchesHandValuesAndGradient) {
  auto logp = t({-1, -2, -0.5, -1}, 2).requires_grad_();
  const auto old = t({-1.5, -2, -0.5, -0.5}, 2);
  const auto mask = t({1, 1, 1, 0}, 2);
  const auto rewards = torch::tensor({1.0, 0.0}, torch::kFloat64);
  const auto baselines = torch::tensor({0.5, 0.5}, torch::kFloat64);
  const auto terms = pmd_mean_terms(logp, old, mask, rewards, baselines, 0.1);
  // row 0: log-ratio 0.5 -> (1 - 0.5 - 0.05)^2; row 1: log-ratio 0 (masked -0.5 ignored) -> (-0.5)^2
  EXPECT_NEAR(terms[0].item<double>(), 0.2025, 1e-12);
  EXPECT_NEAR(terms[1].item<double>(), 0.25, 1e-12);
  terms.sum().backward();
  // d/dlogp = -2 tau (r - b - tau*logratio) on sampled tokens
  const auto expected = t({-0.09, -0.09, 0.1, 0.0}, 2);
  EXPECT_TRUE(torch::allclose(logp.grad(), expected, 1e-12, 1e-12)) << logp.grad();
}

TEST(Objectives, GrpoClippedSurrogate) {
  auto logp = t({-1, -2, -0.5, -1}, 2).requires_grad_();
  const auto old = t({-1.5, -2, -0.5, -0.5}, 2);
  const auto mask = t({1, 1, 1, 1}, 2);
  const auto adv = torch::tensor({1.0, -1.0}, torch::kFloat64);
  const auto terms = grpo_terms(logp, old, mask, adv, 0.2);
  // row 0 (A=1): ratios e^0.5, 1 -> min(1.6487, 1.2) + 1 = 2.2, mean 1.1
  // row 1 (A=-1): ratios 1, e^-0.5 -> -1 + min(-0.6065, -0.8) = -1.8, mean -0.9
  EXPECT_NEAR(terms[0].item<double>(), -1.1, 1e-12);
  EXPECT_NEAR(terms[1].item<double>(), 0.9, 1e-12);
  terms.sum().backward();
  // Clipped tokens give no gradient; the others -A * ratio / tokens.
  const auto g = logp.grad();
  EXPECT_NEAR(g[0][0].item<double>(), 0.0, 1e-12);
  EXPECT_NEAR(g[0][1].item<double>(), -0.5, 1e-12);
  EXPECT_NEAR(g[1][0].item<double>(), 0.5, 1e-12);
  EXPECT_NEAR(g[1][1].item<double>(), 0.0, 1e-12);
}

TEST(Objectives, K3KlAndObjectiveNames) {
  const auto kl = k3_kl_terms(t({-1, -3}, 1), t({-2, -3}, 1), t({1, 1}, 1));
  // token 0: d = -1 -> e^-1 + 1 - 1; token 1: d = 0 -> 0; mean over 2 tokens
  EXPECT_NEAR(kl[0].item<double>(), std::exp(-1.0) / 2, 1e-12);
  EXPECT_EQ(parse_objective("grpo", "rl.objective"), Objective::grpo);
  try {
    parse_objective("ppo", "rl.objective");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "rl.objective (\"ppo\") must be \"pmd_mean\" or \"grpo\"");
  }
}

}  // namespace
}  // namespace k2f::train::rl
