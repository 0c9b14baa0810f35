// parallel/expert_dispatcher.cpp across ranks: the ep dispatcher's outputs and gradients (x,
// routing weights, every local expert weight) equal the single-process grouped computation in fp64
// within 1e-12, including experts and ranks that receive no tokens and a rank with no tokens at
// all; dispatch-then-combine returns the input and its gradient exactly; ep sub-groups of the world.
#include <gtest/gtest.h>

#include "dist_context.h"
#include "expert_case.h"
#include "parallel/mesh.h"

namespace k2f::parallel {
namespace {

using testing::dist;

std::vector<int64_t> uneven_tokens(int64_t members) {
  std::vector<int64_t> tokens;
  for (int64_t r = 0; r < members; ++r) tokens.push_back(5 + 3 * r);
  return tokens;
}

TEST(ExpertParallelDist, WorldGroupEqualsSingleProcess) {
  testing::ExpertProblem p;
  p.tokens_per_member = uneven_tokens(dist().world_size());
  testing::expect_ep_equals_reference(p, dist().world);
  p.top_k = 3;
  p.seed = 21;
  testing::expect_ep_equals_reference(p, dist().world);
}

TEST(ExpertParallelDist, ExpertsAndRanksWithoutTokens) {
  const int64_t W = dist().world_size();
  testing::ExpertProblem p;
  p.tokens_per_member = uneven_tokens(W);
  p.tokens_per_member[1] = 0;  // rank 1 routes nothing but still serves its experts
  // Nothing goes to the last rank's experts, nor to expert 1.
  const int64_t per_rank = p.num_experts / W;
  for (int64_t e = 0; e < (W - 1) * per_rank; ++e) {
    if (e != 1) p.allowed_experts.push_back(e);
  }
  testing::expect_ep_equals_reference(p, dist().world);
}

TEST(ExpertParallelDist, DispatchThenCombineIsTheIdentity) {
  const int64_t W = dist().world_size();
  testing::expect_dispatch_combine_identity(dist().world, 19, 1, 2, {}, 31);
  testing::expect_dispatch_combine_identity(dist().world, 19, 2, 2, {}, 32);
  // Only experts 0 and 3 used: all other experts, and for W > 2 whole ranks, receive nothing.
  testing::expect_dispatch_combine_identity(dist().world, 7, 2, 2, {0, 3}, 33);
  testing::expect_dispatch_combine_identity(dist().world, 7, 1, 2, {2 * W - 1}, 34);
  testing::expect_dispatch_combine_identity(dist().world, 11, 2, 2, {}, 35, torch::kBFloat16);
  testing::expect_dispatch_combine_identity(dist().world, 11, 1, 2, {}, 36, torch::kFloat32);
}

TEST(ExpertParallelDist, EpSubGroupsInsideDataParallel) {
  const int64_t W = dist().world_size();
  if (W % 2 != 0 || W < 4) GTEST_SKIP() << "needs an even world of 4 or more ranks";
  ParallelLayout layout;
  layout.dp = W;
  layout.ep = 2;
  const Mesh mesh(layout);
  Group mine;
  for (const auto& ranks : mesh.all_ep_groups()) {
    auto group = dist().new_group(ranks, "test_ep");
    if (group.defined()) mine = group;
  }
  ASSERT_TRUE(mine.defined());
  ASSERT_EQ(mine->getSize(), 2);
  testing::ExpertProblem p;
  p.tokens_per_member = {4 + dist().rank() / 2, 9};
  p.seed = 40 + static_cast<uint64_t>(dist().rank() / 2);  // each ep group its own problem
  testing::expect_ep_equals_reference(p, mine);
}

}  // namespace
}  // namespace k2f::parallel
