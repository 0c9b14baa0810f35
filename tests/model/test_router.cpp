// model/router.cpp: the correction bias chooses experts but never weights them; normalisation and
// routed scaling; group-limited choice on a hand-built example; softmax scoring; routing to
// experts chosen beforehand (routing replay) weighs them as route() would, with gradients.
#include <gtest/gtest.h>

#include "model/router.h"
#include "test_util.h"

namespace k2f::model {
namespace {

RoutingOptions options(int64_t top_k, int64_t n_group = 1, int64_t topk_group = 1) {
  RoutingOptions o;
  o.top_k = top_k;
  o.n_group = n_group;
  o.topk_group = topk_group;
  o.routed_scaling_factor = 2.5;
  return o;
}

std::vector<int64_t> sorted_ids(const torch::Tensor& idx_K) {
  auto v = std::vector<int64_t>(idx_K.data_ptr<int64_t>(), idx_K.data_ptr<int64_t>() + idx_K.numel());
  std::sort(v.begin(), v.end());
  return v;
}

TEST(Router, BiasChangesChoiceButNotWeights) {
  // sigmoid scores rise with the logit; without bias experts 3 and 2 win.
  const auto logits = torch::tensor({{0.1, 0.2, 0.9, 1.0}}, torch::kFloat32);
  const auto no_bias = torch::zeros({4});
  const auto bias = torch::tensor({0.5, 0.0, 0.0, 0.0}, torch::kFloat32);  // lifts expert 0 above expert 2
  const auto plain = route(logits, no_bias, options(2));
  const auto biased = route(logits, bias, options(2));
  EXPECT_EQ(sorted_ids(plain.expert_idx_NK[0].contiguous()), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(sorted_ids(biased.expert_idx_NK[0].contiguous()), (std::vector<int64_t>{0, 3}));
  // Weights are the UNBIASED sigmoid scores of the chosen experts, normalised, times 2.5.
  const double s0 = 1 / (1 + std::exp(-0.1)), s3 = 1 / (1 + std::exp(-1.0));
  for (int k = 0; k < 2; ++k) {
    const int64_t e = biased.expert_idx_NK[0][k].item<int64_t>();
    const double s = e == 0 ? s0 : s3;
    EXPECT_NEAR(biased.weight_NK[0][k].item<double>(), 2.5 * s / (s0 + s3), 1e-6);
  }
}

TEST(Router, NormalisedWeightsSumToScalingFactor) {
  torch::manual_seed(1);
  const auto r = route(torch::randn({16, 8}), torch::zeros({8}), options(3));
  EXPECT_TRUE(torch::allclose(r.weight_NK.sum(-1), torch::full({16}, 2.5), 1e-5, 1e-6));
  auto o = options(3);
  o.norm_topk_prob = false;
  const auto raw = route(torch::randn({4, 8}), torch::zeros({8}), o);
  EXPECT_TRUE(torch::allclose(raw.weight_NK, raw.scores_NE.gather(1, raw.expert_idx_NK) * 2.5));
}

TEST(Router, GroupLimitedChoiceKeepsBestGroups) {
  // 8 experts in 4 groups of 2. Group scores (sum of top-2 choice): g0 = .1+.2, g1 = .9+.05,
  // g2 = .8+.7, g3 = .3+.3. The best two groups are g2 (1.5) and g1 (0.95), so although expert 7
  // (0.3) beats expert 3 (0.05), top-3 must come from {2, 3, 4, 5}: experts 2, 4, 5.
  const auto scores = torch::tensor({{0.1, 0.2, 0.9, 0.05, 0.8, 0.7, 0.3, 0.3}}, torch::kFloat64);
  const auto logits = torch::log(scores / (1 - scores));  // sigmoid(logits) == scores
  const auto r = route(logits, torch::zeros({8}, torch::kFloat64), options(3, 4, 2));
  EXPECT_EQ(sorted_ids(r.expert_idx_NK[0].contiguous()), (std::vector<int64_t>{2, 4, 5}));
  const auto ungrouped = route(logits, torch::zeros({8}, torch::kFloat64), options(3));
  EXPECT_EQ(sorted_ids(ungrouped.expert_idx_NK[0].contiguous()), (std::vector<int64_t>{2, 4, 5}));
  const auto r4 = route(logits, torch::zeros({8}, torch::kFloat64), options(4, 4, 2));
  EXPECT_EQ(sorted_ids(r4.expert_idx_NK[0].contiguous()), (std::vector<int64_t>{2, 3, 4, 5}));
  const auto u4 = route(logits, torch::zeros({8}, torch::kFloat64), options(4));
  EXPECT_EQ(sorted_ids(u4.expert_idx_NK[0].contiguous()), (std::vector<int64_t>{2, 4, 5, 6}));
}

TEST(Router, SoftmaxScoring) {
  auto o = options(2);
  o.scoring_func = "softmax";
  o.topk_method = "greedy";
  o.norm_topk_prob = false;
  o.routed_scaling_factor = 1.0;
  const auto logits = torch::tensor({{0.0, 1.0, 2.0}}, torch::kFloat64);
  const auto r = route(logits, torch::zeros({3}, torch::kFloat64), o);
  const double z = 1 + std::exp(1.0) + std::exp(2.0);
  EXPECT_EQ(r.expert_idx_NK[0][0].item<int64_t>(), 2);
  EXPECT_NEAR(r.weight_NK[0][0].item<double>(), std::exp(2.0) / z, 1e-12);
  EXPECT_NEAR(r.weight_NK[0][1].item<double>(), std::exp(1.0) / z, 1e-12);
}

// Row 0 replays experts route() would not pick (0 and 1), row 1 holds -1 and chooses freely.
TEST(Router, RouteToChosenWeighsTheChosenExpertsAndFreeRowsChooseAsRoute) {
  const auto logits = torch::tensor({{0.1, 0.2, 0.9, 1.0}, {1.5, -0.5, 0.3, 0.8}}, torch::kFloat64).requires_grad_();
  const auto bias = torch::zeros({4}, torch::kFloat64);
  const auto chosen = torch::tensor({{1, 0}, {-1, -1}}, torch::kInt16);
  const auto replayed = route_to_chosen(logits, bias, chosen, options(2));
  const auto free = route(logits, bias, options(2));
  EXPECT_EQ(replayed.expert_idx_NK[0][0].item<int64_t>(), 1);
  EXPECT_EQ(replayed.expert_idx_NK[0][1].item<int64_t>(), 0);
  const double s0 = 1 / (1 + std::exp(-0.1)), s1 = 1 / (1 + std::exp(-0.2));
  EXPECT_NEAR(replayed.weight_NK[0][0].item<double>(), 2.5 * s1 / (s0 + s1), 1e-12);
  EXPECT_NEAR(replayed.weight_NK[0][1].item<double>(), 2.5 * s0 / (s0 + s1), 1e-12);
  EXPECT_TRUE(torch::equal(replayed.expert_idx_NK[1], free.expert_idx_NK[1]));
  EXPECT_TRUE(torch::equal(replayed.weight_NK[1], free.weight_NK[1]));
  // Replaying route()'s own choice changes nothing.
  const auto same = route_to_chosen(logits, bias, free.expert_idx_NK, options(2));
  EXPECT_TRUE(torch::equal(same.expert_idx_NK, free.expert_idx_NK));
  EXPECT_TRUE(torch::equal(same.weight_NK, free.weight_NK));
  // The router still learns: a replayed expert's weight has a gradient through both chosen logits.
  replayed.weight_NK[0][0].backward();
  const auto grad = logits.grad()[0];
  EXPECT_GT(std::abs(grad[0].item<double>()), 1e-3);
  EXPECT_GT(std::abs(grad[1].item<double>()), 1e-3);
  EXPECT_EQ(grad[2].item<double>(), 0.0);
  EXPECT_EQ(grad[3].item<double>(), 0.0);
}

TEST(Router, RouteToChosenRejectsAWrongShapeOrExpert) {
  const auto logits = torch::zeros({2, 4});
  const auto bias = torch::zeros({4});
  testing::expect_error([&] { route_to_chosen(logits, bias, torch::zeros({3, 2}, torch::kInt16), options(2)); },
                        {"chosen experts of shape [3, 2] for 2 tokens", "expected [2, 2]"});
  testing::expect_error([&] { route_to_chosen(logits, bias, torch::tensor({{0, 4}, {1, 2}}), options(2)); },
                        {"expert id 4 outside the router's 4 experts"});
}

}  // namespace
}  // namespace k2f::model
