// quant/qat_targets.cpp: on a real tiny model, K2 Thinking's ignore list selects exactly the
// routed experts (MoE layers x experts x 3); other target/ignore lists; re.match semantics.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "model/kimi_model.h"
#include "quant/qat_targets.h"
#include "test_util.h"
#include "model/tiny_config.h"

namespace k2f::quant {
namespace {

TEST(QatTargets, K2ThinkingDefaultSelectsExactlyTheRoutedExperts) {
  const auto config = k2f::testing::tiny_config();
  model::KimiForCausalLM lm(config);
  std::vector<std::string> expected;
  for (int64_t layer = config.first_k_dense_replace; layer < config.num_hidden_layers; ++layer) {
    for (int64_t e = 0; e < config.n_routed_experts; ++e) {
      for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) {
        expected.push_back("model.layers." + std::to_string(layer) + ".mlp.experts." + std::to_string(e) + "." +
                           proj + ".weight");
      }
    }
  }
  const auto selected = qat_target_weights(*lm, QatTargets{});
  EXPECT_EQ(selected.size(), static_cast<size_t>((config.num_hidden_layers - config.first_k_dense_replace) *
                                                 config.n_routed_experts * 3));
  EXPECT_EQ(selected, expected);
  // The names are real parameters of the model.
  const auto params = lm->named_parameters();
  for (const auto& name : selected) EXPECT_NE(params.find(name), nullptr) << name;
  // The module handles point at those weights.
  const auto linears = qat_target_linears(*lm, QatTargets{});
  ASSERT_EQ(linears.size(), selected.size());
  EXPECT_TRUE(linears[4].second->weight.is_same(*params.find(selected[4])));
}

TEST(QatTargets, EmptyIgnoreSelectsEveryLinear) {
  const auto config = k2f::testing::tiny_config();
  model::KimiForCausalLM lm(config);
  const auto all = qat_target_weights(*lm, QatTargets{{"Linear"}, {}});
  // Per layer: 5 attention linears (q_a, q_b, kv_a, kv_b, o) + 3 MLP (dense or shared) + routed.
  const int64_t moe_layers = config.num_hidden_layers - config.first_k_dense_replace;
  EXPECT_EQ(static_cast<int64_t>(all.size()), config.num_hidden_layers * 8 + moe_layers * config.n_routed_experts * 3 + 1);
  for (const char* name : {"lm_head.weight", "model.layers.0.self_attn.q_a_proj.weight",
                           "model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.shared_experts.up_proj.weight"}) {
    EXPECT_NE(std::find(all.begin(), all.end(), name), all.end()) << name;
  }
  // The router is not a Linear, whatever the lists say.
  EXPECT_EQ(std::find(all.begin(), all.end(), "model.layers.1.mlp.gate.weight"), all.end());
}

TEST(QatTargets, PathAndRegexTargets) {
  model::KimiForCausalLM lm(k2f::testing::tiny_config());
  EXPECT_EQ(qat_target_weights(*lm, QatTargets{{"re:.*experts\\.3\\."}, {}}),
            (std::vector<std::string>{"model.layers.1.mlp.experts.3.gate_proj.weight",
                                      "model.layers.1.mlp.experts.3.up_proj.weight",
                                      "model.layers.1.mlp.experts.3.down_proj.weight"}));
  EXPECT_EQ(qat_target_weights(*lm, QatTargets{{"lm_head", "model.layers.0.self_attn.o_proj"}, {"lm_head"}}),
            (std::vector<std::string>{"model.layers.0.self_attn.o_proj.weight"}));
  EXPECT_TRUE(qat_target_weights(*lm, QatTargets{{}, {}}).empty());
}

TEST(QatTargets, PatternsFollowPythonReMatch) {
  const std::string expert = "model.layers.3.mlp.experts.5.up_proj";
  EXPECT_TRUE(matches_pattern("lm_head", "lm_head"));
  EXPECT_FALSE(matches_pattern("lm_head_extra", "lm_head"));
  EXPECT_TRUE(matches_pattern(expert, "re:.*experts"));
  EXPECT_FALSE(matches_pattern(expert, "re:experts"));  // anchored at the start, like re.match
  EXPECT_TRUE(matches_pattern(expert, "re:model\\.layers"));
  EXPECT_FALSE(matches_pattern(expert, "re:.*mlp\\.(gate|up|gate_up|down)_proj.*"));
  EXPECT_TRUE(matches_pattern("model.layers.0.mlp.gate_up_proj", "re:.*mlp\\.(gate|up|gate_up|down)_proj.*"));
  EXPECT_FALSE(matches_pattern("model.layers.3.mlp.gate", "re:.*mlp\\.(gate|up|gate_up|down)_proj.*"));
  EXPECT_TRUE(matches_pattern("model.layers.3.mlp.shared_experts.down_proj", "re:.*shared_experts.*"));
  k2f::testing::expect_error([] { matches_pattern("x", "re:(unclosed"); }, {"re:(unclosed"});
}

}  // namespace
}  // namespace k2f::quant
