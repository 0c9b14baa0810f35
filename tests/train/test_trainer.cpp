// train/trainer.cpp: resume is exact (2N steps straight == N + resume + N, every loss and the final
// weights bitwise, in fp32 and bf16), micro-batching does not change training, damaged
// checkpoints fall back to the previous one, a checkpoint of another config is refused, and a step
// whose loss or gradient is not finite changes neither the weights nor the optimizer state.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>

#include "model/kimi_model.h"
#include "trainer_fixture.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace k2f::train {
namespace {

std::vector<double> losses(const std::vector<StepMetrics>& history) {
  std::vector<double> values;
  for (const auto& m : history) values.push_back(m.loss);
  return values;
}

TrainerRunOptions quiet() {
  TrainerRunOptions options;
  options.quiet_console = true;
  return options;
}

// A run directory holding the checkpoint of one completed step; returns the options used.
TrainOptions one_step_run(const testing::ScratchDir& dir) {
  auto options = testing::tiny_train_options(dir, "run");
  options.steps = 1;
  options.schedule.warmup_steps = 0;
  Trainer(options, quiet()).run();
  return options;
}

void expect_same_weights(model::KimiForCausalLM& a, model::KimiForCausalLM& b) {
  const auto sa = model::named_state(*a), sb = model::named_state(*b);
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) EXPECT_TRUE(torch::equal(sa[i].second, sb[i].second)) << sa[i].first;
}

void expect_exact_resume(torch::ScalarType dtype, bool recompute) {
  testing::ScratchDir dir("trainer");
  auto options = testing::tiny_train_options(dir, "straight");
  options.dtype = dtype;
  options.recompute = recompute;
  Trainer straight(options, quiet());
  const auto all = losses(straight.run());
  ASSERT_EQ(all.size(), 6u);
  EXPECT_LT(all.back(), all.front());

  options.run_dir = dir / "resumed";
  TrainerRunOptions first_half = quiet();
  first_half.stop_after_steps = 3;
  auto part1 = losses(Trainer(options, first_half).run());
  Trainer second(options, quiet());  // resumes from step 3
  EXPECT_EQ(second.completed_steps(), 3);
  const auto part2 = losses(second.run());
  part1.insert(part1.end(), part2.begin(), part2.end());
  EXPECT_EQ(part1, all);  // bitwise: operator== on doubles
  expect_same_weights(straight.model(), second.model());
}

TEST(Trainer, ResumeIsBitwiseExactFp32) { expect_exact_resume(torch::kFloat32, false); }
TEST(Trainer, ResumeIsBitwiseExactBf16) { expect_exact_resume(torch::kBFloat16, false); }
TEST(Trainer, ResumeIsBitwiseExactWithRecompute) { expect_exact_resume(torch::kFloat32, true); }

TEST(Trainer, RecomputeAndMicroBatchingDoNotChangeTraining) {
  testing::ScratchDir dir("trainer");
  auto options = testing::tiny_train_options(dir, "a");
  options.steps = 3;
  const auto reference = losses(Trainer(options, quiet()).run());
  options.run_dir = dir / "b";
  options.micro_batch_size = 1;
  const auto one_by_one = losses(Trainer(options, quiet()).run());
  options.run_dir = dir / "c";
  options.micro_batch_size = 4;
  options.recompute = true;
  const auto recomputed = losses(Trainer(options, quiet()).run());
  for (size_t i = 0; i < reference.size(); ++i) {
    EXPECT_NEAR(one_by_one[i], reference[i], 1e-5) << "step " << i;
    EXPECT_NEAR(recomputed[i], reference[i], 1e-5) << "step " << i;
  }
}

TEST(Trainer, DamagedCheckpointFallsBackToThePreviousOne) {
  testing::ScratchDir dir("trainer");
  auto options = testing::tiny_train_options(dir, "run");
  Trainer(options, quiet()).run();  // checkpoints at steps 3 and 6
  {
    std::fstream file(dir / "run/step-000006/model-rank00000.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(-5, std::ios::end);
    file.put('\x7f');
  }
  ::testing::internal::CaptureStderr();
  Trainer resumed(options, quiet());
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(resumed.completed_steps(), 3);
  EXPECT_NE(log.find("step-000006 is damaged"), std::string::npos) << log;
  EXPECT_NE(log.find("checksum mismatch"), std::string::npos) << log;
  EXPECT_NE(log.find("falling back to step-000003"), std::string::npos) << log;
}

TEST(Trainer, CheckpointOfAnotherConfigIsRefused) {
  testing::ScratchDir dir("trainer");
  auto options = one_step_run(dir);
  options.model.moe_intermediate_size = 24;
  options.steps = 2;
  testing::expect_error([&] { Trainer t(options, quiet()); },
                        {"model-rank00000.safetensors", "model.layers.1.mlp.experts.0.gate_proj.weight",
                         "expected shape [24, 32], got [16, 32]"});
}

TEST(Trainer, FreshNeverOverwritesCheckpoints) {
  testing::ScratchDir dir("trainer");
  const auto options = one_step_run(dir);
  TrainerRunOptions fresh = quiet();
  fresh.fresh = true;
  testing::expect_error([&] { Trainer t(options, fresh); }, {"holds checkpoints already", "--fresh"});
}

TEST(Trainer, MetricsAreWrittenPerStep) {
  testing::ScratchDir dir("trainer");
  auto options = testing::tiny_train_options(dir, "run");
  options.steps = 2;
  options.tensorboard = true;
  Trainer(options, quiet()).run();
  std::ifstream jsonl(dir / "run/metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(jsonl, line)) {
    const auto m = Json::parse(line);
    EXPECT_EQ(m["step"].get<int>(), ++lines);
    EXPECT_GT(m["tokens_per_s"].get<double>(), 0);
    EXPECT_GT(m["max_qk_logit"].get<double>(), 0);
    EXPECT_GE(m["max_expert_imbalance"].get<double>(), 1.0);
  }
  EXPECT_EQ(lines, 2);
  EXPECT_FALSE(std::filesystem::is_empty(dir / "run/tensorboard"));
}

std::vector<torch::Tensor> state_copy(model::KimiForCausalLM& model) {
  std::vector<torch::Tensor> copies;
  for (const auto& [name, tensor] : model::named_state(*model)) copies.push_back(tensor.detach().clone());
  return copies;
}

bool same_state(model::KimiForCausalLM& model, const std::vector<torch::Tensor>& copies) {
  const auto state = model::named_state(*model);
  for (size_t i = 0; i < state.size(); ++i)
    if (!torch::equal(state[i].second, copies[i])) return false;
  return true;
}

std::vector<torch::Tensor> optimizer_copy(const Trainer& trainer) {
  std::vector<torch::Tensor> copies;
  for (const auto& [name, tensor] : trainer.optimizer_state()) copies.push_back(tensor.detach().clone());
  return copies;
}

bool same_optimizer_state(const Trainer& trainer, const std::vector<torch::Tensor>& copies) {
  const auto state = trainer.optimizer_state();
  if (state.size() != copies.size()) return false;
  for (size_t i = 0; i < state.size(); ++i)
    if (!torch::equal(state[i].second, copies[i])) return false;
  return true;
}

TEST(Trainer, NonFiniteStepIsSkippedAndChangesNothing) {
  testing::ScratchDir dir("trainer");
  auto options = testing::tiny_train_options(dir, "run");
  options.steps = 4;
  options.debug_nan_at_step = 3;  // the loss of step 3 (1-based) is NaN
  Trainer trainer(options, quiet());
  EXPECT_FALSE(trainer.train_step(0).skipped);
  EXPECT_FALSE(trainer.train_step(1).skipped);
  const auto before = state_copy(trainer.model());  // weights, router biases: every tensor
  const auto optimizer_before = optimizer_copy(trainer);
  const auto bad = trainer.train_step(2);
  EXPECT_TRUE(bad.skipped);
  EXPECT_EQ(bad.skipped_steps, 1);
  EXPECT_TRUE(same_state(trainer.model(), before));
  EXPECT_TRUE(same_optimizer_state(trainer, optimizer_before));
  const auto next = trainer.train_step(3);
  EXPECT_FALSE(next.skipped);
  EXPECT_EQ(next.skipped_steps, 1);
  EXPECT_TRUE(std::isfinite(next.loss));
  EXPECT_FALSE(same_state(trainer.model(), before));
}

TEST(Trainer, NonFiniteGradientWithAFiniteLossIsSkippedAndLeavesTheOptimizerStateUnchanged) {
  testing::ScratchDir dir("trainer");
  auto options = testing::tiny_train_options(dir, "run");
  options.steps = 4;
  Trainer trainer(options, quiet());
  EXPECT_FALSE(trainer.train_step(0).skipped);
  EXPECT_FALSE(trainer.train_step(1).skipped);
  const auto before = state_copy(trainer.model());
  const auto optimizer_before = optimizer_copy(trainer);
  // One parameter's gradient becomes infinite in backward; the forward (and the loss) is untouched.
  torch::Tensor embedding = trainer.model()->model->embed_tokens->weight;
  const auto hook = embedding.register_hook(
      [](const torch::Tensor& grad) { return torch::full_like(grad, std::numeric_limits<float>::infinity()); });
  const auto bad = trainer.train_step(2);
  embedding.remove_hook(hook);
  EXPECT_TRUE(bad.skipped);
  EXPECT_TRUE(std::isfinite(bad.loss)) << bad.loss;
  EXPECT_FALSE(std::isfinite(bad.grad_norm)) << bad.grad_norm;
  EXPECT_EQ(bad.skipped_steps, 1);
  EXPECT_TRUE(same_state(trainer.model(), before));
  EXPECT_TRUE(same_optimizer_state(trainer, optimizer_before));
  const auto next = trainer.train_step(3);
  EXPECT_FALSE(next.skipped);
  EXPECT_FALSE(same_optimizer_state(trainer, optimizer_before));
}

TEST(Trainer, ConsecutiveNonFiniteStepsStopNamingTheFirstAndKeepTheLastGoodCheckpoint) {
  testing::ScratchDir dir("trainer");
  auto options = testing::tiny_train_options(dir, "run");
  options.steps = 8;
  options.checkpoint_interval = 2;
  options.max_bad_steps = 3;
  options.debug_nan_at_step = 3;
  options.debug_nan_steps = 10;
  testing::expect_error([&] { Trainer(options, quiet()).run(); },
                        {"steps 3 to 5", "3 consecutive steps with a non-finite loss or gradient",
                         "train.max_bad_steps = 3", "first at step 3", "step-000002"});
  // Step 4 fell due inside the bad run: no checkpoint was written there.
  EXPECT_EQ(CheckpointManager(options.run_dir, 2).steps(), std::vector<int64_t>{2});
  options.debug_nan_at_step = 0;
  Trainer resumed(options, quiet());
  EXPECT_EQ(resumed.completed_steps(), 2);
}

}  // namespace
}  // namespace k2f::train
