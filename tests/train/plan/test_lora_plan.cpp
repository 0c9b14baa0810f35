// train/plan/lora_plan.cpp and the planner's LoRA mode: the adapters it counts are the ones
// apply_lora creates on the model (default targets, and with the routed experts), the frozen base
// is held INT4/bf16 without gradients or optimizer state, LoRA's backward is one forward of FLOPs,
// and the K2 Thinking recipe fits 8 x H200 but not 8 x H100.
#include <gtest/gtest.h>

#include "model/kimi_model.h"
#include "model/tiny_config.h"
#include "quant/lora.h"
#include "train/plan/plan.h"
#include "train/plan/step_time_estimate.h"

namespace k2f::train::plan {
namespace {

const std::string kThinkingRecipe = std::string(K2F_SOURCE_DIR) + "/recipes/k2_thinking_lora.toml";

int64_t adapters_on_the_model(const quant::LoraOptions& options) {
  model::KimiForCausalLM lm(k2f::testing::tiny_config());
  int64_t count = 0;
  for (const auto& [name, tensor] : quant::apply_lora(*lm, options).named_parameters()) count += tensor.numel();
  return count;
}

PlanInputs tiny_lora_inputs(const quant::LoraOptions& options, int64_t ep) {
  PlanInputs in;
  in.model = k2f::testing::tiny_config();
  in.layout.pp = 1;
  in.layout.dp = 2;
  in.layout.ep = ep;
  in.num_gpus = 2;
  in.seq_len = 16;
  in.global_batch_size = 2;
  in.lora = LoraPlan{};
  in.lora->rank = options.rank;
  in.lora->modules = options.modules;
  in.lora->select(in.model);
  return in;
}

TEST(LoraPlan, CountsTheAdaptersApplyLoraCreates) {
  quant::LoraOptions options;
  options.rank = 4;
  auto with_experts = options;
  with_experts.modules.targets.push_back("re:.*mlp\\.experts\\.[0-9]+\\.(gate|up|down)_proj$");
  with_experts.modules.ignore.clear();  // lm_head too
  for (const auto& o : {options, with_experts}) {
    const auto in = tiny_lora_inputs(o, 1);
    const auto stage = stage_layouts(in.model, in.layout, true).front();
    EXPECT_EQ(adapter_params(in.model, stage, 1, *in.lora).total(), adapters_on_the_model(o));
    // Expert adapters split over ep as the experts do.
    const auto split = adapter_params(in.model, stage, 2, *in.lora);
    const auto whole = adapter_params(in.model, stage, 1, *in.lora);
    EXPECT_EQ(split.replicated, whole.replicated);
    EXPECT_EQ(split.experts * 2, whole.experts);
  }
}

TEST(LoraPlan, TheFrozenBaseHasNoGradientsOrOptimizerState) {
  quant::LoraOptions options;
  options.rank = 8;
  auto in = tiny_lora_inputs(options, 2);
  const auto s = memory_plan(in).front();
  const auto& l = s.layout;
  const double adapters = static_cast<double>(adapter_params(in.model, l, 2, *in.lora).total());
  EXPECT_DOUBLE_EQ(s.weights, static_cast<double>(l.expert_params) * (0.5 + 2.0 / 32) +
                                  2.0 * static_cast<double>(l.replicated_params + l.buffer_params));
  EXPECT_DOUBLE_EQ(s.adapters, 4 * adapters);
  EXPECT_DOUBLE_EQ(s.gradients, 4 * adapters);
  EXPECT_DOUBLE_EQ(s.adamw_moments, 8 * adapters);
  EXPECT_DOUBLE_EQ(s.master_weights, 0);
  EXPECT_DOUBLE_EQ(s.muon_momentum, 0);
  in.lora->int4_experts = false;
  EXPECT_DOUBLE_EQ(memory_plan(in).front().weights, 2.0 * static_cast<double>(l.stored_params()));
  const auto f = flops_per_token(in);
  EXPECT_DOUBLE_EQ(f.backward, f.forward);  // the input gradient only
}

TEST(LoraPlan, KimiK2ThinkingFitsEightH200sButNotEightH100s) {
  const auto h200 = plan_recipe(Recipe::load(kThinkingRecipe));
  ASSERT_TRUE(h200.inputs.lora.has_value());
  EXPECT_TRUE(h200.inputs.lora->int4_experts);
  EXPECT_TRUE(h200.fits()) << h200.to_table();
  EXPECT_EQ(h200.peak().master_weights, 0);
  const std::string table = h200.to_table();
  for (const char* part : {"experts INT4", "LoRA adapters", "r 16", "fits", "assumed: train.init_from is not here"})
    EXPECT_NE(table.find(part), std::string::npos) << part << "\n" << table;
  const auto h100 = plan_recipe(Recipe::load(kThinkingRecipe, {"cluster.preset=h100"}));
  EXPECT_FALSE(h100.fits());
  // The full fine-tune of the same model on the same node is far from fitting.
  const auto full = plan_recipe(Recipe::load(kThinkingRecipe, {"lora.rank=0"}));
  EXPECT_GT(full.peak().total(), 5 * h200.peak().total());
}

}  // namespace
}  // namespace k2f::train::plan
