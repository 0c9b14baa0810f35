// train/schedule.cpp: warmup-stable-decay and cosine against hand-computed values; validation.
#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"
#include "train/schedule.h"

namespace k2f::train {
namespace {

TEST(Schedule, WarmupStableDecay) {
  ScheduleOptions o;
  o.name = "wsd";
  o.warmup_steps = 4;
  o.decay_steps = 4;
  o.min_lr = 0.1;
  EXPECT_DOUBLE_EQ(learning_rate(o, 1.0, 0, 20), 0.25);  // (step+1)/warmup
  EXPECT_DOUBLE_EQ(learning_rate(o, 1.0, 3, 20), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(o, 1.0, 10, 20), 1.0);  // stable
  EXPECT_DOUBLE_EQ(learning_rate(o, 1.0, 15, 20), 1.0);
  // decay over steps 16..19: progress 1/4, 2/4, 3/4, 1
  EXPECT_NEAR(learning_rate(o, 1.0, 16, 20), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-15);
  EXPECT_NEAR(learning_rate(o, 1.0, 19, 20), 0.1, 1e-15);
  o.decay_shape = "linear";
  EXPECT_NEAR(learning_rate(o, 1.0, 17, 20), 0.1 + 0.9 * 0.5, 1e-15);
}

TEST(Schedule, Cosine) {
  ScheduleOptions o;
  o.name = "cosine";
  o.warmup_steps = 2;
  EXPECT_DOUBLE_EQ(learning_rate(o, 2.0, 0, 10), 1.0);
  EXPECT_NEAR(learning_rate(o, 2.0, 5, 10), 2.0 * 0.5 * (1 + std::cos(M_PI * 4.0 / 8.0)), 1e-15);
  EXPECT_NEAR(learning_rate(o, 2.0, 9, 10), 0.0, 1e-15);
}

TEST(Schedule, Validation) {
  ScheduleOptions o;
  o.warmup_steps = 10;
  testing::expect_error([&] { o.validate(1e-3, 5); }, {"train.steps (5) must be >= schedule.warmup_steps (10)"});
  o = ScheduleOptions{};
  o.name = "step";
  testing::expect_error([&] { o.validate(1e-3, 5); }, {"schedule.name (\"step\")"});
  o = ScheduleOptions{};
  o.min_lr = 1.0;
  testing::expect_error([&] { o.validate(1e-3, 5); }, {"schedule.min_lr (1) must be in [0, optim.lr (0.001)]"});
}

}  // namespace
}  // namespace k2f::train
