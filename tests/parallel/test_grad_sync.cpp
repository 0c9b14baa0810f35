// parallel/grad_sync.cpp in one process: which HF names count as routed experts, and that a
// one-rank sync only scales (missing gradients become zeros). Multi-rank sums: the dist tests.
#include <gtest/gtest.h>

#include "parallel/bootstrap.h"
#include "parallel/grad_sync.h"

namespace k2f::parallel {
namespace {

TEST(GradSync, RoutedExpertNames) {
  EXPECT_TRUE(is_routed_expert_parameter("model.layers.7.mlp.experts.12.up_proj.weight"));
  EXPECT_TRUE(is_routed_expert_parameter("mlp.experts.0.down_proj.weight"));
  EXPECT_FALSE(is_routed_expert_parameter("model.layers.7.mlp.shared_experts.up_proj.weight"));
  EXPECT_FALSE(is_routed_expert_parameter("model.layers.7.mlp.gate.weight"));
  EXPECT_FALSE(is_routed_expert_parameter("model.layers.7.mlp.gate.e_score_correction_bias"));
  EXPECT_FALSE(is_routed_expert_parameter("model.layers.0.mlp.up_proj.weight"));
  EXPECT_FALSE(is_routed_expert_parameter("model.layers.7.self_attn.kv_b_proj.weight"));
}

TEST(GradSync, OneRankScalesAndFillsMissingGradients) {
  DistOptions o;
  o.configure_threads = false;
  auto ctx = init_distributed(detect_launch_env(env_from_map({})), o);
  auto a = torch::ones({3, 2}, torch::kFloat64).requires_grad_(true);
  auto b = torch::ones({5}).requires_grad_(true);
  auto c = torch::ones({4}).requires_grad_(true);
  a.mutable_grad() = torch::full({3, 2}, 4.0, torch::kFloat64);
  b.mutable_grad() = torch::full({5}, 2.0);
  GradSyncOptions options;
  options.scale = 0.5;
  options.bucket_bytes = 8;  // one tensor per bucket
  sync_gradients({{"model.layers.1.mlp.experts.3.up_proj.weight", a}, {"model.norm.weight", b}, {"lm_head.weight", c}},
                 ctx.world, ctx.world, options);
  EXPECT_TRUE(torch::equal(a.grad(), torch::full({3, 2}, 2.0, torch::kFloat64)));
  EXPECT_TRUE(torch::equal(b.grad(), torch::full({5}, 1.0)));
  EXPECT_TRUE(torch::equal(c.grad(), torch::zeros({4})));
}

}  // namespace
}  // namespace k2f::parallel
