// model/experts.cpp: the grouped path (sort by expert, one GEMM per contiguous block) equals the
// per-expert loop reference in outputs and in gradients for inputs, weights and expert weights.
#include <gtest/gtest.h>

#include "model/experts.h"
#include "model/router.h"

namespace k2f::model {
namespace {

struct Case {
  RoutedExperts experts{nullptr};
  torch::Tensor x, idx, weight;
};

Case make_case(int64_t first_expert, int64_t num_local, int64_t tokens) {
  torch::manual_seed(3);
  Case c;
  c.experts = RoutedExperts(12, 10, first_expert, num_local);
  c.experts->to(torch::kFloat64);
  for (auto& p : c.experts->parameters()) p.data().normal_(0, 0.3);
  c.x = torch::randn({tokens, 12}, torch::kFloat64).requires_grad_(true);
  RoutingOptions o;
  o.top_k = 3;
  const auto r = route(torch::randn({tokens, num_local}, torch::kFloat64), torch::zeros({num_local}, torch::kFloat64), o);
  c.idx = r.expert_idx_NK + first_expert;
  c.weight = r.weight_NK.detach().clone().requires_grad_(true);
  return c;
}

std::vector<torch::Tensor> gradients(const Case& c, const torch::Tensor& y) {
  for (auto& p : c.experts->parameters()) p.mutable_grad() = torch::Tensor();
  c.x.mutable_grad() = torch::Tensor();
  c.weight.mutable_grad() = torch::Tensor();
  (y * torch::arange(y.numel(), y.options()).view(y.sizes()).cos()).sum().backward();
  std::vector<torch::Tensor> grads{c.x.grad().clone(), c.weight.grad().clone()};
  for (auto& p : c.experts->parameters()) grads.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  return grads;
}

void expect_grouped_equals_loop(int64_t first_expert, int64_t num_local, int64_t tokens) {
  auto c = make_case(first_expert, num_local, tokens);
  const auto y_grouped = c.experts->forward_grouped(c.x, c.idx, c.weight);
  const auto y_loop = c.experts->forward_loop(c.x, c.idx, c.weight);
  EXPECT_TRUE(torch::allclose(y_grouped, y_loop, 1e-12, 1e-12));
  EXPECT_GT(y_loop.abs().sum().item<double>(), 0.0);
  const auto g_grouped = gradients(c, c.experts->forward_grouped(c.x, c.idx, c.weight));
  const auto g_loop = gradients(c, c.experts->forward_loop(c.x, c.idx, c.weight));
  ASSERT_EQ(g_grouped.size(), g_loop.size());
  for (size_t i = 0; i < g_grouped.size(); ++i) {
    EXPECT_TRUE(torch::allclose(g_grouped[i], g_loop[i], 1e-12, 1e-12)) << "gradient " << i;
  }
}

TEST(RoutedExperts, GroupedEqualsLoopInOutputsAndGradients) { expect_grouped_equals_loop(0, 8, 37); }

TEST(RoutedExperts, GlobalIdsOfALocalSlice) {
  expect_grouped_equals_loop(16, 8, 29);
  RoutedExperts slice(4, 4, 16, 2);
  std::vector<std::string> names;
  for (const auto& p : slice->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names.front(), "16.gate_proj.weight");
  EXPECT_EQ(names.back(), "17.down_proj.weight");
}

TEST(RoutedExperts, ExpertsWithoutTokensAreSkipped) {
  expect_grouped_equals_loop(0, 8, 1);  // one token: 5 of 8 experts idle
}

}  // namespace
}  // namespace k2f::model
