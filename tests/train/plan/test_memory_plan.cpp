// Per-GPU bytes by hand for a small layout: ZeRO-1 shards the replicated parameters' optimizer
// state over dp and the routed experts' over dp/ep; gradients stay whole (fp32); Muon keeps one
// fp32 slot, AdamW two; train.dtype fp32 has no master copy.
#include <gtest/gtest.h>

#include "train/plan/memory_plan.h"
#include "train/plan/plan_configs.h"

namespace k2f::train::plan {
namespace {

PlanInputs small_layout(bool zero1, bool bf16) {
  PlanInputs in;
  in.model = k2f::testing::planner_configs()[0];
  in.layout.pp = 1;
  in.layout.dp = 4;
  in.layout.ep = 2;
  in.layout.zero1 = zero1;
  in.num_gpus = 4;
  in.seq_len = 16;
  in.global_batch_size = 8;
  in.bf16 = bf16;
  return in;
}

TEST(MemoryPlan, ZeroOneShardsByTheGroupHoldingTheSameValues) {
  const auto in = small_layout(true, true);
  const auto s = memory_plan(in).front();
  const auto& l = s.layout;
  const double replicated = static_cast<double>(l.replicated_params), experts = static_cast<double>(l.expert_params);
  EXPECT_DOUBLE_EQ(s.gradients, 4.0 * (replicated + experts));
  EXPECT_DOUBLE_EQ(s.weights, 2.0 * static_cast<double>(l.stored_params()));
  EXPECT_DOUBLE_EQ(s.master_weights, 4.0 * (replicated / 4 + experts / 2));
  const double replicated_muon = static_cast<double>(l.muon_params) - experts;
  EXPECT_DOUBLE_EQ(s.muon_momentum, 4.0 * (replicated_muon / 4 + experts / 2));
  EXPECT_DOUBLE_EQ(s.adamw_moments, 8.0 * static_cast<double>(l.adamw_params) / 4);
  EXPECT_DOUBLE_EQ(s.inflight_micro_batches, 1);  // no pipeline: one micro-batch at a time
}

TEST(MemoryPlan, WithoutZeroOneAndInFp32) {
  const auto s = memory_plan(small_layout(false, false)).front();
  EXPECT_EQ(s.master_weights, 0);
  EXPECT_DOUBLE_EQ(s.weights, 4.0 * static_cast<double>(s.layout.stored_params()));
  EXPECT_DOUBLE_EQ(s.muon_momentum + s.adamw_moments,
                   4.0 * static_cast<double>(s.layout.muon_params) + 8.0 * static_cast<double>(s.layout.adamw_params));
}

}  // namespace
}  // namespace k2f::train::plan
