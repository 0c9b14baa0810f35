// In-flight micro-batches and bubbles of the three schedules against their textbook values.
#include <gtest/gtest.h>

#include "train/plan/pipeline_inflight.h"

namespace k2f::train::plan {
namespace {

parallel::ParallelLayout pipeline(int64_t pp, int64_t v, const std::string& schedule) {
  parallel::ParallelLayout l;
  l.pp = pp;
  l.virtual_stages = v;
  l.schedule = schedule;
  return l;
}

TEST(PipelineInflight, GPipeHoldsEveryMicroBatch) {
  for (int64_t s = 0; s < 4; ++s) EXPECT_EQ(inflight_micro_batches(pipeline(4, 1, "gpipe"), s, 32), 32);
  EXPECT_EQ(bubble_micro_batches(pipeline(4, 1, "gpipe")), 3);
}

TEST(PipelineInflight, OneFOneBHoldsPpMinusStage) {
  for (int64_t s = 0; s < 4; ++s) EXPECT_EQ(inflight_micro_batches(pipeline(4, 1, "1f1b"), s, 32), 4 - s);
  EXPECT_EQ(inflight_micro_batches(pipeline(4, 1, "1f1b"), 0, 2), 2);  // never more than the step has
}

TEST(PipelineInflight, InterleavedMatchesMegatron) {
  // Stage 0 holds pp * (1 + (pp-1)/(pp*v)) micro-batches' worth (Narayanan et al. 2021).
  EXPECT_DOUBLE_EQ(inflight_micro_batches(pipeline(16, 2, "interleaved"), 0, 128), 16 * (1 + 15.0 / 32));
  EXPECT_DOUBLE_EQ(inflight_micro_batches(pipeline(16, 2, "interleaved"), 15, 128), 17.0 / 2);
  EXPECT_DOUBLE_EQ(bubble_micro_batches(pipeline(16, 2, "interleaved")), 7.5);
}

}  // namespace
}  // namespace k2f::train::plan
