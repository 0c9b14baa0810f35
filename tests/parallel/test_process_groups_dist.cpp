// parallel/process_groups.cpp and bootstrap agreement across ranks: each mesh group holds exactly
// its ranks (an all-reduce of the global ranks sums to the expected members), and a config error
// on one rank stops every rank with that rank's message instead of a hang.
#include <gtest/gtest.h>

#include <numeric>

#include "../model/tiny_config.h"
#include "dist_context.h"
#include "parallel/process_groups.h"
#include "test_util.h"

namespace k2f::parallel {
namespace {

using testing::dist;

int64_t sum_over(const Group& group) {
  auto t = torch::full({1}, static_cast<int64_t>(dist().rank()), torch::kInt64);
  all_reduce_sum(group, t);
  return t.item<int64_t>();
}

int64_t sum_of(const std::vector<int>& ranks) { return std::accumulate(ranks.begin(), ranks.end(), int64_t{0}); }

TEST(ProcessGroupsDist, MeshGroupsHoldTheirRanks) {
  const int64_t W = dist().world_size();
  ParallelLayout layout;
  layout.pp = W >= 4 ? 2 : 1;
  layout.dp = W / layout.pp;
  layout.ep = layout.dp % 2 == 0 ? 2 : 1;
  auto model = testing::tiny_config();
  model.num_hidden_layers = 4;
  dist().check_on_all_ranks([&] { layout.validate(W, model); });
  const Mesh mesh(layout);
  const auto groups = create_process_groups(dist(), mesh);
  const int r = dist().rank();
  EXPECT_EQ(groups.dp->getSize(), static_cast<int>(layout.dp));
  EXPECT_EQ(groups.ep->getSize(), static_cast<int>(layout.ep));
  EXPECT_EQ(groups.ep->getRank(), static_cast<int>(groups.coord.ep_rank));
  EXPECT_EQ(sum_over(groups.world), W * (W - 1) / 2);
  EXPECT_EQ(sum_over(groups.dp), sum_of(mesh.dp_group(r)));
  EXPECT_EQ(sum_over(groups.ep), sum_of(mesh.ep_group(r)));
  EXPECT_EQ(sum_over(groups.expert_dp), sum_of(mesh.expert_dp_group(r)));
  EXPECT_EQ(sum_over(groups.pp), sum_of(mesh.pp_group(r)));
}

TEST(ProcessGroupsDist, TheSameGroupCreatedTwiceWorks) {
  const int64_t W = dist().world_size();
  std::vector<int> all(static_cast<size_t>(W));
  std::iota(all.begin(), all.end(), 0);
  auto first = dist().new_group(all, "again");
  auto second = dist().new_group(all, "again");
  EXPECT_EQ(sum_over(second), W * (W - 1) / 2);
  EXPECT_EQ(sum_over(first), W * (W - 1) / 2);
}

TEST(ProcessGroupsDist, ConfigErrorOnOneRankStopsAllRanksWithItsMessage) {
  const int64_t W = dist().world_size();
  const auto model = testing::tiny_config();
  ParallelLayout layout;
  layout.dp = W;
  if (dist().rank() == W - 1) layout.ep = 3;  // only the last rank reads a bad value
  testing::expect_error([&] { dist().check_on_all_ranks([&] { layout.validate(W, model); }); },
                        {"rank " + std::to_string(W - 1) + ": parallel.ep (3) must divide parallel.dp (" +
                         std::to_string(W) + ")"});
  // Afterwards the world still works, and a clean round passes on every rank.
  EXPECT_NO_THROW(dist().check_on_all_ranks([] {}));
  EXPECT_EQ(sum_over(dist().world), W * (W - 1) / 2);
}

}  // namespace
}  // namespace k2f::parallel
