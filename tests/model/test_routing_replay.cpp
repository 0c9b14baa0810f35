// model/routing_replay.cpp: a recorded forward replayed gives the same logits bit for bit; a
// replayed routing other than the router's own is what the experts get (recorded back, other
// logits) while the router still receives gradients; -1 rows route freely; leaving the replay's
// scope restores free routing; a replay of the wrong shape is refused.
#include <gtest/gtest.h>

#include "model/routing_replay.h"
#include "test_util.h"
#include "tiny_config.h"

namespace k2f::model {
namespace {

KimiForCausalLM three_layer_model() {
  auto config = testing::tiny_config();
  config.num_hidden_layers = 3;  // one dense layer, then two MoE layers
  KimiForCausalLM lm(config);
  init_weights(lm, 21);
  return lm;
}

torch::Tensor some_tokens() {
  torch::manual_seed(4);
  return torch::randint(0, 64, {2, 6}, torch::kInt64);
}

TEST(RoutingReplay, RecordedRoutingReplayedGivesTheSameForwardBitForBit) {
  auto lm = three_layer_model();
  const auto tokens = some_tokens();
  ASSERT_EQ(num_moe_layers(*lm->model), 2);
  torch::Tensor logits, recorded;
  {
    RoutingRecorder recorder(*lm->model);
    logits = lm->forward(tokens);
    recorded = recorder.recorded();
  }
  ASSERT_EQ(recorded.sizes(), (std::vector<int64_t>{12, 2, 2}));
  EXPECT_EQ(recorded.scalar_type(), kExpertIdDtype);
  RoutingReplay replay(*lm->model, recorded);
  EXPECT_TRUE(torch::equal(lm->forward(tokens), logits));
  // All -1: every token routes freely, as without a replay.
  RoutingReplay free(*lm->model, torch::full_like(recorded, -1));
  EXPECT_TRUE(torch::equal(lm->forward(tokens), logits));
}

TEST(RoutingReplay, AnotherRoutingIsUsedAndTheRouterStillLearns) {
  auto lm = three_layer_model();
  const auto tokens = some_tokens();
  const auto free_logits = lm->forward(tokens).detach();
  torch::Tensor own;
  {
    RoutingRecorder recorder(*lm->model);
    lm->forward(tokens);
    own = recorder.recorded();
  }
  const auto shifted = ((own.to(torch::kInt64) + 1) % 8).to(kExpertIdDtype);  // still distinct per token
  torch::Tensor replayed_logits, seen;
  {
    RoutingReplay replay(*lm->model, shifted);
    RoutingRecorder recorder(*lm->model);
    replayed_logits = lm->forward(tokens);
    seen = recorder.recorded();
    replayed_logits.square().mean().backward();  // the replay stays in force for the backward pass
  }
  EXPECT_TRUE(torch::equal(seen, shifted));
  EXPECT_GT((replayed_logits.detach() - free_logits).abs().max().item<double>(), 1e-3);
  for (const auto& layer : lm->model->decoder_layers) {
    if (!layer->moe) continue;
    const auto grad = layer->moe->gate->weight.grad();
    ASSERT_TRUE(grad.defined());
    EXPECT_GT(grad.abs().max().item<double>(), 0.0);
  }
  // Out of the replay's scope the routers choose freely again.
  EXPECT_TRUE(torch::equal(lm->forward(tokens).detach(), free_logits));
}

TEST(RoutingReplay, AReplayOfTheWrongShapeIsRefused) {
  auto lm = three_layer_model();
  testing::expect_error([&] { RoutingReplay replay(*lm->model, torch::zeros({12, 3, 2}, kExpertIdDtype)); },
                        {"experts of shape [12, 3, 2] for a model of 2 MoE layers and 2 experts per token"});
  RoutingReplay replay(*lm->model, torch::zeros({5, 2, 2}, kExpertIdDtype));
  testing::expect_error([&] { lm->forward(some_tokens()); }, {"chosen experts of shape [5, 2] for 12 tokens"});
  RoutingRecorder recorder(*lm->model);
  testing::expect_error([&] { recorder.recorded(); }, {"no forward since recording began"});
}

}  // namespace
}  // namespace k2f::model
