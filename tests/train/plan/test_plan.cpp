// The plan of the real K2 recipe against the K2 report and DeepSeek-V3 (K2_REFERENCE section 8):
// about 30 GB of bf16 weights and fp32 gradients per GPU in a 256-GPU model-parallel group, and a
// step time of the order of 180K H800 GPU-hours per trillion tokens. Then the refusal message.
#include <gtest/gtest.h>

#include "test_util.h"
#include "train/plan/plan.h"

namespace k2f::train::plan {
namespace {

const std::string kK2Recipe = std::string(K2F_SOURCE_DIR) + "/recipes/kimi_k2_pretrain.toml";

TEST(Plan, KimiK2RecipeAgreesWithTheK2Report) {
  const auto plan = plan_recipe(Recipe::load(kK2Recipe));
  EXPECT_EQ(plan.inputs.num_gpus, 2048);
  EXPECT_EQ(plan.inputs.layout.pp * plan.inputs.layout.ep, 256);
  const auto& s = plan.peak();
  const double weights_and_grads_gb = (s.weights + s.gradients) / 1e9;
  EXPECT_GT(weights_and_grads_gb, 25);
  EXPECT_LT(weights_and_grads_gb, 35);
  EXPECT_TRUE(plan.fits());
  ASSERT_TRUE(plan.time.has_value());
  const double gpu_hours = plan.time->gpu_hours_per_trillion_tokens;
  EXPECT_GT(gpu_hours, 180e3 / 2);
  EXPECT_LT(gpu_hours, 180e3 * 2);
  EXPECT_GT(plan.time->mfu, 0.2);
  EXPECT_LT(plan.time->mfu, 0.6);
  const auto table = plan.to_table();
  EXPECT_NE(table.find("master weights (ZeRO-1)"), std::string::npos) << table;
  EXPECT_NE(table.find("GPU-hours per trillion tokens"), std::string::npos) << table;
  EXPECT_EQ(plan.to_json()["layout"]["model_parallel_gpus"], 256);
}

TEST(Plan, ZeroOneShardsOptimizerStateAndRecomputeShrinksActivations) {
  const auto base = plan_recipe(Recipe::load(kK2Recipe));
  const auto no_zero = plan_recipe(Recipe::load(kK2Recipe, {"parallel.zero1=false"}));
  EXPECT_GT(no_zero.peak().muon_momentum, 4 * base.peak().muon_momentum);
  const auto no_recompute = plan_recipe(Recipe::load(kK2Recipe, {"train.recompute=false"}));
  EXPECT_GT(no_recompute.peak().activations, 10 * base.peak().activations);
  EXPECT_FALSE(no_recompute.fits());
}

TEST(Plan, RefusalQuotesTheStageAndTheWayOut) {
  const auto plan = plan_recipe(Recipe::load(kK2Recipe, {"cluster.memory_gib=16"}));
  ASSERT_FALSE(plan.fits());
  k2f::testing::expect_error([&] { check_plan_fits(plan); },
                             {"does not fit", "cluster.memory_gib is 16", "parallel.pp 16", "--ignore-plan"});
}

TEST(Plan, RolloutKvCacheIsTheMlaLatent) {
  const auto plan = plan_recipe(Recipe::load(kK2Recipe), RolloutShape{8, 0});
  const auto& c = plan.inputs.model;
  const double per_token = static_cast<double>((c.kv_lora_rank + c.qk_rope_head_dim) * 2);
  EXPECT_DOUBLE_EQ(plan.peak().kv_cache,
                   per_token * static_cast<double>(plan.peak().layout.layers.size()) * 8 * 4096);
}

}  // namespace
}  // namespace k2f::train::plan
