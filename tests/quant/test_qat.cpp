// quant/qat.cpp: QAT applied from outside equals running the model with its target weights
// replaced by fake_quantize(w) (forward bit for bit in fp32), the gradient reaching the master
// weights is the straight-through one, only the targets are touched, and the per-layer error
// metric is computed over the quantised weights of each layer.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>

#include "model/kimi_model.h"
#include "model/tiny_config.h"
#include "quant/fake_quant.h"
#include "quant/qat.h"
#include "test_util.h"

namespace k2f::quant {
namespace {

QatOptions tiny_qat() { return QatOptions{QuantOptions{16, Grid::k2}, QatTargets{}}; }

model::KimiForCausalLM tiny_model(uint64_t seed) {
  model::KimiForCausalLM lm(testing::tiny_config());
  model::init_weights(lm, seed);
  lm->compute_dtype = torch::kFloat32;
  return lm;
}

torch::Tensor tiny_tokens() {
  torch::manual_seed(9);  // Debian's LibTorch seeds its default generator randomly
  return torch::randint(0, testing::tiny_config().vocab_size, {2, 12});
}

TEST(Qat, ForwardEqualsModelWithFakeQuantisedWeightsAndGradientIsStraightThrough) {
  auto qat = tiny_model(5);
  const auto paths = apply_qat(*qat, tiny_qat());
  const auto config = testing::tiny_config();
  EXPECT_EQ(paths.size(), static_cast<size_t>((config.num_hidden_layers - config.first_k_dense_replace) *
                                              config.n_routed_experts * 3));

  // The reference: a plain model whose expert weights ARE the fake-quantised values.
  auto reference = tiny_model(5);
  {
    torch::NoGradGuard no_grad;
    for (const auto& [path, linear] : qat_target_linears(*reference, QatTargets{})) {
      linear->weight.copy_(fake_quantize(linear->weight, tiny_qat().quant));
    }
  }
  const auto tokens = tiny_tokens();
  const auto logits_qat = qat->forward(tokens);
  const auto logits_ref = reference->forward(tokens);
  EXPECT_TRUE(torch::equal(logits_qat, logits_ref));

  logits_qat.pow(2).mean().backward();
  logits_ref.pow(2).mean().backward();
  const auto qat_params = qat->named_parameters();
  const auto ref_params = reference->named_parameters();
  for (const auto& item : ref_params) {
    ASSERT_TRUE(qat_params[item.key()].grad().defined()) << item.key();
    EXPECT_TRUE(torch::equal(qat_params[item.key()].grad(), item.value().grad())) << item.key();
  }
  // The masters are untouched: QAT changes what the forward sees, not the stored weights.
  const auto untouched = tiny_model(5);
  for (const auto& item : untouched->named_parameters()) {
    EXPECT_TRUE(torch::equal(qat_params[item.key()], item.value())) << item.key();
  }
}

// The packed model computes what the QAT model computes (the same INT4 values, through the W4A16
// kernel instead of a dense fake-quantised matrix), holds no dense expert weights, and leaves the
// other weights alone.
TEST(Qat, PackForInferenceComputesWhatTheQatModelComputes) {
  auto qat = tiny_model(5);
  apply_qat(*qat, tiny_qat());
  auto packed = tiny_model(5);
  const auto paths = pack_for_inference(*packed, tiny_qat());
  EXPECT_EQ(paths, apply_qat(*tiny_model(5), tiny_qat()));
  const auto tokens = tiny_tokens();
  torch::NoGradGuard no_grad;
  const auto difference = (packed->forward(tokens) - qat->forward(tokens)).abs().max().item<double>();
  std::cout << "[ pack ] max |logit packed - logit qat| = " << difference << "\n";
  EXPECT_LT(difference, 1e-5);  // only the GEMM's summation order differs
  const auto dense = tiny_model(5)->named_parameters();
  for (const auto& item : packed->named_parameters()) {
    const std::string module = item.key().substr(0, item.key().rfind('.'));
    const bool is_target = std::find(paths.begin(), paths.end(), module) != paths.end();
    if (is_target) {
      EXPECT_EQ(item.value().numel(), 0) << item.key();
    } else {
      EXPECT_TRUE(torch::equal(item.value(), dense[item.key()])) << item.key();
    }
  }
}

TEST(Qat, OnlyTargetsGetTheKernel) {
  auto lm = tiny_model(1);
  apply_qat(*lm, tiny_qat());
  int64_t with = 0, without = 0;
  for (const auto& item : lm->named_modules("", false)) {
    auto linear = std::dynamic_pointer_cast<model::LinearImpl>(item.value());
    if (!linear) continue;
    const bool expert = item.key().find(".mlp.experts.") != std::string::npos;
    EXPECT_EQ(has_fake_quant(*linear), expert) << item.key();
    (expert ? with : without) += 1;
  }
  EXPECT_GT(with, 0);
  EXPECT_GT(without, 0);
}

TEST(Qat, QuantisationErrorPerLayer) {
  auto lm = tiny_model(2);
  const auto errors = quantization_error_per_layer(*lm, tiny_qat());
  ASSERT_EQ(errors.size(), 1u);  // tiny_config: layer 0 dense, layer 1 MoE
  EXPECT_EQ(errors[0].first, "layer.1");
  // Independent: the same ratio summed by hand over layer 1's expert weights.
  double error = 0, magnitude = 0;
  for (const auto& [path, linear] : qat_target_linears(*lm, QatTargets{})) {
    const auto w = linear->weight.detach();
    error += (w - fake_quantize(w, tiny_qat().quant)).abs().sum().item<double>();
    magnitude += w.abs().sum().item<double>();
  }
  EXPECT_NEAR(errors[0].second, error / magnitude, 1e-12);
  EXPECT_GT(errors[0].second, 0.01);  // 4-bit codes: a few percent
  EXPECT_LT(errors[0].second, 0.2);
}

TEST(Qat, RejectsGroupSizeNotDividingAndEmptySelection) {
  auto lm = tiny_model(1);
  auto options = tiny_qat();
  options.quant.group_size = 32;  // expert down_proj has in_features 16
  testing::expect_error([&] { apply_qat(*lm, options); }, {"quant.group_size (32) must divide the in_features (16)", "down_proj"});
  options = tiny_qat();
  options.targets.targets = {"re:nothing.*"};
  testing::expect_error([&] { apply_qat(*lm, options); }, {"select no Linear"});
}

}  // namespace
}  // namespace k2f::quant
