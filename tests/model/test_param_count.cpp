// model/param_count.cpp: exact Kimi-K2 counts, an independent formula for another layout, and
// agreement with the numel of models actually built.
#include <gtest/gtest.h>

#include "model/kimi_model.h"
#include "model/param_count.h"
#include "tiny_config.h"

namespace k2f::model {
namespace {

TEST(ParamCount, KimiK2ExactCounts) {
  const auto counts = count_parameters(kimi_k2_config());
  EXPECT_EQ(counts.total(), 1026408232448LL);
  EXPECT_EQ(counts.active(), 32861500928LL);
}

// Written out from the HF tensor list (K2_REFERENCE section 3) for q_lora_rank null and three
// dense layers, independently of count_parameters.
TEST(ParamCount, PlainQProjAndThreeDenseLayersMatchFormula) {
  auto c = kimi_k2_config();
  c.q_lora_rank.reset();
  c.first_k_dense_replace = 3;
  const int64_t V = 163840, D = 7168, I = 18432, Ie = 2048, H = 64, L = 61, E = 384, K = 8;
  const int64_t q_proj = D * H * (128 + 64);
  const int64_t kv_a = D * (512 + 64) + 512;
  const int64_t kv_b = 512 * H * (128 + 128);
  const int64_t o_proj = H * 128 * D;
  const int64_t per_layer_common = q_proj + kv_a + kv_b + o_proj + 2 * D;
  const int64_t dense = 3 * D * I;
  const int64_t moe_all = E * D + E + E * 3 * D * Ie + 3 * D * Ie;
  const int64_t moe_active = E * D + E + K * 3 * D * Ie + 3 * D * Ie;
  const int64_t outside = V * D + V * D + D;
  const auto counts = count_parameters(c);
  EXPECT_EQ(counts.total(), outside + L * per_layer_common + 3 * dense + 58 * moe_all);
  EXPECT_EQ(counts.active(), outside + L * per_layer_common + 3 * dense + 58 * moe_active);
}

int64_t built_numel(const ModelConfig& c) {
  KimiForCausalLM lm(c);
  int64_t n = 0;
  for (const auto& [name, t] : named_state(*lm)) n += t.numel();
  return n;
}

TEST(ParamCount, EqualsBuiltModelForSeveralLayouts) {
  auto c = testing::tiny_config();
  EXPECT_EQ(count_parameters(c).total(), built_numel(c));
  c.q_lora_rank.reset();
  c.moe_layer_freq = 2;
  c.num_hidden_layers = 5;
  EXPECT_EQ(count_parameters(c).total(), built_numel(c));
  c.n_shared_experts = 0;
  c.first_k_dense_replace = 0;
  EXPECT_EQ(count_parameters(c).total(), built_numel(c));
}

}  // namespace
}  // namespace k2f::model
