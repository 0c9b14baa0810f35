// train/rl/rewards.cpp against hand-computed values.
#include <gtest/gtest.h>

#include "train/rl/rewards.h"

namespace k2f::train::rl {
namespace {

TEST(Rewards, K15LengthReward) {
  // lambda = 0.5 - (len - 10) / (30 - 10)
  EXPECT_DOUBLE_EQ(k15_length_reward(10, 10, 30, true), 0.5);
  EXPECT_DOUBLE_EQ(k15_length_reward(25, 10, 30, true), -0.25);
  EXPECT_DOUBLE_EQ(k15_length_reward(10, 10, 30, false), 0.0);   // min(0, 0.5)
  EXPECT_DOUBLE_EQ(k15_length_reward(30, 10, 30, false), -0.5);
  EXPECT_DOUBLE_EQ(k15_length_reward(17, 17, 17, true), 0.0);    // all lengths equal
}

TEST(Rewards, CorrectnessFormatLengthAndTruncation) {
  RewardOptions o;
  o.correct = 1.0;
  o.format = 0.1;
  o.length = 0.5;
  o.truncation_penalty = -0.5;
  const std::vector<EpisodeOutcome> outcomes = {
      {true, true, false, 10},   // 1 + 0.1 + 0.5 * 0.5
      {false, true, false, 20},  // 0.1 + 0.5 * min(0, 0)
      {false, false, true, 30},  // 0.5 * -0.5 - 0.5
      {true, true, false, 40},   // second group, equal lengths: 1 + 0.1
      {false, false, false, 40}, // 0
      {true, false, false, 40},  // 1
  };
  const auto r = compute_rewards(outcomes, 3, o);
  ASSERT_EQ(r.size(), 6u);
  EXPECT_DOUBLE_EQ(r[0], 1.35);
  EXPECT_DOUBLE_EQ(r[1], 0.1);
  EXPECT_DOUBLE_EQ(r[2], -0.75);
  EXPECT_DOUBLE_EQ(r[3], 1.1);
  EXPECT_DOUBLE_EQ(r[4], 0.0);
  EXPECT_DOUBLE_EQ(r[5], 1.0);
  EXPECT_THROW(compute_rewards(outcomes, 4, o), std::exception);
}

TEST(Rewards, ProgressIsTheShareOfExpectedResultsReachedInOrder) {
  const std::vector<std::string> expected = {"k1", "k2", "k3", "done 0582"};
  EXPECT_DOUBLE_EQ(in_order_share({}, expected), 0.0);
  EXPECT_DOUBLE_EQ(in_order_share({"k1", "k2"}, expected), 0.5);
  EXPECT_DOUBLE_EQ(in_order_share({"k1", "error: no such key: 123", "k2", "k3"}, expected), 0.75);  // a retry
  EXPECT_DOUBLE_EQ(in_order_share({"k2", "k3"}, expected), 0.0);  // not from the first
  EXPECT_DOUBLE_EQ(in_order_share({"k1", "k3", "k2"}, expected), 0.5);
  EXPECT_DOUBLE_EQ(in_order_share({"k1", "k2", "k3", "done 0582", "k1"}, expected), 1.0);
  EXPECT_DOUBLE_EQ(in_order_share({"k1"}, {}), 0.0);

  RewardOptions o;
  o.format = 0.0;
  o.progress = 0.5;
  EpisodeOutcome halfway;
  halfway.progress = 0.5;
  EpisodeOutcome done{true, true, false, 10};
  done.progress = 1.0;
  const auto r = compute_rewards({halfway, done}, 2, o);
  EXPECT_DOUBLE_EQ(r[0], 0.25);
  EXPECT_DOUBLE_EQ(r[1], 1.5);
  o.progress = -0.1;
  EXPECT_THROW(o.validate(), std::exception);
}

}  // namespace
}  // namespace k2f::train::rl
