// train/optim/optimizer.cpp: parameter groups (Muon for hidden matrices, AdamW for the rest),
// the Muon update (exact formula and its RMS of about 0.2*lr), decoupled weight decay, AdamW's
// first step, and state round trip.
#include <gtest/gtest.h>

#include "test_util.h"
#include "train/optim/newton_schulz.h"
#include "train/optim/optimizer.h"

namespace k2f::train {
namespace {

OptimizerOptions fp64_options() {
  OptimizerOptions o;
  o.newton_schulz_dtype = torch::kFloat64;
  return o;
}

TEST(Optimizer, GroupsFollowK2) {
  const auto matrix = torch::zeros({4, 4});
  EXPECT_EQ(default_rule("model.layers.3.self_attn.q_a_proj.weight", matrix), UpdateRule::Muon);
  EXPECT_EQ(default_rule("model.layers.3.mlp.experts.7.up_proj.weight", matrix), UpdateRule::Muon);
  EXPECT_EQ(default_rule("model.layers.3.mlp.gate.weight", matrix), UpdateRule::Muon);
  EXPECT_EQ(default_rule("model.embed_tokens.weight", matrix), UpdateRule::AdamW);
  EXPECT_EQ(default_rule("lm_head.weight", matrix), UpdateRule::AdamW);
  EXPECT_EQ(default_rule("model.layers.3.input_layernorm.weight", torch::zeros({4})), UpdateRule::AdamW);
  auto options = OptimizerOptions{};
  options.adamw_pattern = "mlp\\.gate\\.";
  Optimizer forced({{"model.layers.1.mlp.gate.weight", matrix.clone()}, {"model.layers.1.o_proj.weight", matrix.clone()}},
                   options);
  EXPECT_EQ(forced.parameters()[0].rule, UpdateRule::AdamW);
  EXPECT_EQ(forced.parameters()[1].rule, UpdateRule::Muon);
  options.name = "adamw";
  options.adamw_pattern = "";
  Optimizer all_adamw({{"model.layers.1.o_proj.weight", matrix.clone()}}, options);
  EXPECT_EQ(all_adamw.parameters()[0].rule, UpdateRule::AdamW);
}

TEST(Optimizer, MuonUpdateFormulaAndRms) {
  torch::manual_seed(1);
  auto w = torch::randn({24, 40}, torch::kFloat64);
  const auto w0 = w.clone();
  const auto g = torch::randn({24, 40}, torch::kFloat64);
  w.mutable_grad() = g;
  auto options = fp64_options();
  options.weight_decay = 0.0;
  Optimizer optimizer({{"model.layers.0.self_attn.o_proj.weight", w}}, options);
  const double lr = 0.01;
  optimizer.step(lr);
  // First step: M = G, so the Nesterov direction is G + 0.95 G.
  const auto expected = w0 - lr * 0.2 * std::sqrt(40.0) * newton_schulz5(1.95 * g, torch::kFloat64);
  EXPECT_TRUE(torch::allclose(w, expected, 0, 1e-12));
  const double rms = (w - w0).pow(2).mean().sqrt().item<double>();
  EXPECT_GT(rms, 0.2 * lr * 0.7);  // NS5's singular values lie in about [0.7, 1.2]
  EXPECT_LT(rms, 0.2 * lr * 1.2);
}

TEST(Optimizer, DecoupledWeightDecay) {
  auto muon_w = torch::full({4, 6}, 2.0, torch::kFloat64);
  auto adam_w = torch::full({6}, 2.0, torch::kFloat64);
  muon_w.mutable_grad() = torch::zeros_like(muon_w);
  adam_w.mutable_grad() = torch::zeros_like(adam_w);
  auto options = fp64_options();
  options.weight_decay = 0.1;
  Optimizer optimizer({{"model.layers.0.mlp.up_proj.weight", muon_w}, {"model.norm.weight", adam_w}}, options);
  optimizer.step(0.5);
  EXPECT_TRUE(torch::allclose(muon_w, torch::full_like(muon_w, 2.0 * (1 - 0.05)), 0, 1e-15));
  EXPECT_TRUE(torch::allclose(adam_w, torch::full_like(adam_w, 2.0 * (1 - 0.05)), 0, 1e-15));
}

TEST(Optimizer, AdamWFirstStepMovesBySignTimesLr) {
  auto w = torch::zeros({5}, torch::kFloat64);
  w.mutable_grad() = torch::tensor({1.0, -2.0, 0.5, -0.25, 3.0}, torch::kFloat64);
  auto options = fp64_options();
  options.weight_decay = 0.0;
  Optimizer optimizer({{"model.norm.weight", w}}, options);
  optimizer.step(1e-3);
  // m_hat = g, v_hat = g^2: update = lr * g / (|g| + eps).
  EXPECT_TRUE(torch::allclose(w, -1e-3 * torch::sign(w.grad()), 0, 1e-10));
}

TEST(Optimizer, StateRoundTrip) {
  torch::manual_seed(2);
  auto a = torch::randn({4, 4}), b = torch::randn({4});
  a.mutable_grad() = torch::randn({4, 4});
  b.mutable_grad() = torch::randn({4});
  Optimizer first({{"model.layers.0.mlp.up_proj.weight", a}, {"model.norm.weight", b}}, OptimizerOptions{});
  first.step(0.01);
  std::map<std::string, torch::Tensor> saved;
  for (const auto& [name, t] : first.state_tensors()) saved[name] = t.clone();
  EXPECT_TRUE(saved.count("model.layers.0.mlp.up_proj.weight.momentum"));
  EXPECT_TRUE(saved.count("model.norm.weight.exp_avg_sq"));
  auto a2 = a.clone(), b2 = b.clone();
  Optimizer second({{"model.layers.0.mlp.up_proj.weight", a2}, {"model.norm.weight", b2}}, OptimizerOptions{});
  second.load_state([&](const std::string& name, RowRange rows) {
    EXPECT_TRUE(rows.whole()) << name;
    return saved.at(name);
  });
  EXPECT_EQ(second.steps_taken(), 1);
  for (const auto& [name, t] : second.state_tensors()) EXPECT_TRUE(torch::equal(t, saved.at(name))) << name;
}

TEST(Optimizer, RejectsBadOptions) {
  OptimizerOptions o;
  o.name = "sgd";
  testing::expect_error([&] { o.validate(); }, {"optim.name (\"sgd\") must be \"muonclip\" or \"adamw\""});
  o = OptimizerOptions{};
  o.adamw_pattern = "(";
  testing::expect_error([&] { o.validate(); }, {"optim.adamw_pattern", "not a valid regular expression"});
}

// ZeRO-1 splits AdamW parameters by rows: two optimizers holding rows [0, 3) and [3, 5) update
// the parameter exactly as one holding all of it, keep state for their rows only, and restore
// their rows from the whole parameter's state.
TEST(Optimizer, RowRangesUpdateLikeTheWholeParameter) {
  torch::manual_seed(3);
  const auto initial = torch::randn({5, 4});
  auto whole = initial.clone(), split = initial.clone();
  Optimizer one({{"lm_head.weight", whole}}, OptimizerOptions{});
  Optimizer top({{"lm_head.weight", split}}, OptimizerOptions{}, {RowRange{0, 3}});
  Optimizer bottom({{"lm_head.weight", split}}, OptimizerOptions{}, {RowRange{3, 2}});
  for (int step = 0; step < 3; ++step) {
    const auto grad = torch::randn({5, 4});
    whole.mutable_grad() = grad.clone();
    split.mutable_grad() = grad.clone();
    one.step(0.01);
    top.step(0.01);
    bottom.step(0.01);
  }
  EXPECT_TRUE(torch::equal(whole, split));
  EXPECT_EQ(top.state_bytes(), 2 * 3 * 4 * 4);  // exp_avg and exp_avg_sq of 3 rows, fp32
  const auto full_state = one.state_tensors();
  Optimizer restored({{"lm_head.weight", split}}, OptimizerOptions{}, {RowRange{3, 2}});
  restored.load_state([&](const std::string& name, RowRange rows) {
    for (const auto& [n, t] : full_state)
      if (n == name) return rows.whole() ? t : t.narrow(0, rows.first, rows.count);
    return torch::Tensor();
  });
  const auto bottom_state = bottom.state_tensors();
  const auto restored_state = restored.state_tensors();
  ASSERT_EQ(bottom_state.size(), restored_state.size());
  for (size_t i = 0; i < bottom_state.size(); ++i)
    EXPECT_TRUE(torch::equal(bottom_state[i].second, restored_state[i].second)) << bottom_state[i].first;
  testing::expect_error([&] { Optimizer({{"model.layers.0.o_proj.weight", torch::zeros({4, 4})}}, OptimizerOptions{}, {RowRange{0, 2}}); },
                        {"only element-wise rules update a row range"});
}

}  // namespace
}  // namespace k2f::train
