// parallel/zero1.cpp without processes: owners balance whole tensors largest first and are the
// same for the same shapes; element-wise parameters split their rows into contiguous ranges that
// cover every row once; routed experts are planned over the expert-dp group, the rest over dp.
#include <gtest/gtest.h>

#include <numeric>

#include "parallel/zero1.h"

namespace k2f::parallel {
namespace {

TEST(Zero1, OwnersTakeTheLargestFirstOntoTheLightestRank) {
  // Largest first onto the lighter rank: 100 -> 0, 60 -> 1, 50 -> 1 (110), 40 -> 0 (140), 10 -> 1 (120).
  EXPECT_EQ(assign_owners({50, 100, 10, 60, 40}, 2), (std::vector<int>{1, 0, 1, 1, 0}));
  EXPECT_EQ(assign_owners({5, 5, 5, 5}, 4), (std::vector<int>{0, 1, 2, 3}));  // ties: the lowest rank
  EXPECT_EQ(assign_owners({7, 3}, 1), (std::vector<int>{0, 0}));
}

TEST(Zero1, ElementwiseParametersSplitTheirRowsAndExpertsUseTheirOwnGroup) {
  const NamedParameters parameters{{"model.embed_tokens.weight", torch::zeros({10, 4})},
                                   {"model.layers.1.self_attn.o_proj.weight", torch::zeros({4, 4})},
                                   {"model.layers.1.mlp.experts.0.up_proj.weight", torch::zeros({8, 4})},
                                   {"model.layers.1.mlp.experts.1.up_proj.weight", torch::zeros({8, 4})},
                                   {"model.norm.weight", torch::zeros({4})}};
  const auto shards = plan_shards(parameters, {true, false, false, false, true}, /*dp_size=*/4, /*expert_dp_size=*/2);
  ASSERT_EQ(shards.size(), 5u);
  EXPECT_TRUE(shards[0].rows_split);
  int64_t covered = 0;
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(shards[0].row_offset(r), covered);
    covered += shards[0].row_count(r);
    EXPECT_TRUE(shards[0].held_by(r));
  }
  EXPECT_EQ(covered, 10);  // rows 0-1, 2-4, 5-6, 7-9
  EXPECT_EQ(shards[0].row_count(1), 3);
  EXPECT_FALSE(shards[1].rows_split);
  EXPECT_EQ(shards[1].group_size, 4);
  EXPECT_EQ(shards[2].group_size, 2);  // experts: over the expert-data-parallel group
  EXPECT_NE(shards[2].owner, shards[3].owner);
  EXPECT_TRUE(shards[4].rows_split);
  EXPECT_EQ(shards[4].row_count(0), 1);
}

}  // namespace
}  // namespace k2f::parallel
