// train/optim/qk_clip.cpp: a head driven above tau is brought back to exactly tau (recomputed
// forward), other heads and the shared rope key (kv_a_proj_with_mqa) are untouched.
#include <gtest/gtest.h>

#include "model/kimi_model.h"
#include "tests/model/tiny_config.h"
#include "train/optim/qk_clip.h"

namespace k2f::train {
namespace {

std::vector<double> recorded_max_logits(model::KimiForCausalLM& lm, const torch::Tensor& tokens, int64_t layer) {
  begin_qk_recording(lm->model);
  torch::NoGradGuard no_grad;
  lm->forward(tokens);
  const auto max_H = lm->model->decoder_layers[layer]->self_attn->max_logits_H.to(torch::kFloat64);
  return std::vector<double>(max_H.data_ptr<double>(), max_H.data_ptr<double>() + max_H.numel());
}

TEST(QkClip, ClipsTheHeadAboveTauToTau) {
  auto config = testing::tiny_config();
  model::KimiForCausalLM lm(config);
  model::init_weights(lm, 3);
  lm->to(torch::kFloat64);
  lm->compute_dtype = torch::kFloat64;
  torch::manual_seed(4);
  const auto tokens = torch::randint(config.vocab_size, {2, 12}, torch::kInt64);
  auto& attention = lm->model->decoder_layers[1]->self_attn;
  const int64_t dn = config.qk_nope_head_dim, dr = config.qk_rope_head_dim;
  {
    torch::NoGradGuard no_grad;  // blow up head 1's queries (nope and rope rows)
    attention->q_b_proj->weight.narrow(0, 1 * (dn + dr), dn + dr).mul_(40.0);
  }
  const auto before = recorded_max_logits(lm, tokens, 1);
  const double tau = before[1] / 3.0;
  ASSERT_GT(before[1], tau);
  ASSERT_LT(before[0], tau);
  const auto kv_a_before = attention->kv_a_proj_with_mqa->weight.clone();
  const auto q_head0_before = attention->q_b_proj->weight.narrow(0, 0, dn + dr).clone();
  const auto kv_head0_before = attention->kv_b_proj->weight.narrow(0, 0, dn + config.v_head_dim).clone();
  const auto v_head1_before = attention->kv_b_proj->weight.narrow(0, (dn + config.v_head_dim) + dn, config.v_head_dim).clone();
  const auto other_layer_before = recorded_max_logits(lm, tokens, 0);

  recorded_max_logits(lm, tokens, 1);  // record, then clip as the trainer does after a step
  const auto report = apply_qk_clip(lm->model, tau);
  EXPECT_EQ(report.heads_clipped, 1);
  EXPECT_NEAR(report.max_logit, before[1], 1e-9);

  const auto after = recorded_max_logits(lm, tokens, 1);
  EXPECT_NEAR(after[1], tau, 1e-3);
  EXPECT_NEAR(after[0], before[0], 1e-12);
  EXPECT_TRUE(torch::equal(attention->kv_a_proj_with_mqa->weight, kv_a_before));  // shared k_pe untouched
  EXPECT_TRUE(torch::equal(attention->q_b_proj->weight.narrow(0, 0, dn + dr), q_head0_before));
  EXPECT_TRUE(torch::equal(attention->kv_b_proj->weight.narrow(0, 0, dn + config.v_head_dim), kv_head0_before));
  EXPECT_TRUE(torch::equal(attention->kv_b_proj->weight.narrow(0, (dn + config.v_head_dim) + dn, config.v_head_dim),
                           v_head1_before));  // values are not part of the logit
  EXPECT_EQ(recorded_max_logits(lm, tokens, 0), other_layer_before);
}

}  // namespace
}  // namespace k2f::train
