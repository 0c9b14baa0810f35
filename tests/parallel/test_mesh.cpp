// parallel/mesh.cpp: layout validation messages (dotted recipe keys and values), rank coordinates
// and group membership worked out by hand, and that each kind of group partitions the world.
#include <gtest/gtest.h>

#include <set>

#include "../model/tiny_config.h"
#include "parallel/mesh.h"
#include "test_util.h"

namespace k2f::parallel {
namespace {

using testing::expect_error;

ParallelLayout layout(int64_t pp, int64_t dp, int64_t ep, int64_t vs = 1, std::string schedule = "1f1b") {
  ParallelLayout l;
  l.pp = pp;
  l.dp = dp;
  l.ep = ep;
  l.virtual_stages = vs;
  l.schedule = std::move(schedule);
  return l;
}

model::ModelConfig config(int64_t experts, int64_t layers) {
  auto c = testing::tiny_config();
  c.n_routed_experts = experts;
  c.num_hidden_layers = layers;
  return c;
}

TEST(ParallelLayout, ValidLayoutsPass) {
  EXPECT_NO_THROW(layout(1, 1, 1).validate(1, config(8, 2)));
  EXPECT_NO_THROW(layout(2, 2, 2).validate(4, config(8, 2)));
  EXPECT_NO_THROW(layout(2, 1, 1, 2, "interleaved").validate(2, config(8, 4)));
  EXPECT_NO_THROW(layout(1, 2, 1, 1, "gpipe").validate(2, config(0, 2)));
  // The K2 layout: 16 stages x 16-way dp with 16-way ep (256 ranks), 384 experts, 61 layers.
  EXPECT_NO_THROW(layout(16, 16, 16, 1, "1f1b").validate(256, config(384, 61)));
}

TEST(ParallelLayout, ErrorsQuoteKeysAndValues) {
  expect_error([] { layout(1, 4, 3).validate(4, config(8, 2)); }, {"parallel.ep (3) must divide parallel.dp (4)"});
  expect_error([] { layout(1, 4, 4).validate(4, config(6, 2)); },
               {"parallel.ep (4) must divide model.n_routed_experts (6)"});
  expect_error([] { layout(2, 2, 1).validate(3, config(8, 2)); },
               {"parallel.pp (2) x parallel.dp (2) = 4 must equal the number of ranks (3)"});
  expect_error([] { layout(2, 1, 1, 2, "interleaved").validate(2, config(8, 3)); },
               {"parallel.pp (2) x parallel.virtual_stages (2) = 4", "model.num_hidden_layers (3)"});
  expect_error([] { layout(2, 1, 1, 1, "interleaved").validate(2, config(8, 4)); },
               {"parallel.schedule \"interleaved\" needs parallel.virtual_stages > 1 (got 1)"});
  expect_error([] { layout(1, 1, 1, 2, "interleaved").validate(1, config(8, 4)); },
               {"parallel.schedule \"interleaved\" needs parallel.pp > 1 (got 1)"});
  expect_error([] { layout(2, 1, 1, 2, "1f1b").validate(2, config(8, 4)); },
               {"parallel.virtual_stages (2) > 1 needs parallel.schedule \"interleaved\" (got \"1f1b\")"});
  expect_error([] { layout(1, 1, 1, 1, "zb").validate(1, config(8, 4)); },
               {"parallel.schedule (\"zb\") must be one of gpipe, 1f1b, interleaved"});
  expect_error([] { layout(1, 2, 2).validate(2, config(0, 4)); },
               {"parallel.ep (2) needs routed experts", "model.n_routed_experts is 0"});
  expect_error([] { layout(0, 1, 1).validate(1, config(8, 4)); }, {"parallel.pp (0) must be >= 1"});
  expect_error([] { layout(1, 2, 3).validate(2, config(8, 4), "job.parallel"); },
               {"job.parallel.ep (3) must divide job.parallel.dp (2)"});
}

TEST(Mesh, CoordinatesAndGroupsOfPp2Dp4Ep2) {
  const Mesh mesh(layout(2, 4, 2));
  ASSERT_EQ(mesh.world_size(), 8);
  // rank 6 = stage 1, dp rank 2; ep groups are dp ranks {0,1} and {2,3}: ep rank 0, replica 1.
  const auto c = mesh.coord(6);
  EXPECT_EQ(c.pp_rank, 1);
  EXPECT_EQ(c.dp_rank, 2);
  EXPECT_EQ(c.ep_rank, 0);
  EXPECT_EQ(c.expert_replica, 1);
  EXPECT_EQ(mesh.dp_group(6), (std::vector<int>{4, 5, 6, 7}));
  EXPECT_EQ(mesh.ep_group(6), (std::vector<int>{6, 7}));
  EXPECT_EQ(mesh.expert_dp_group(6), (std::vector<int>{4, 6}));
  EXPECT_EQ(mesh.pp_group(6), (std::vector<int>{2, 6}));
  EXPECT_EQ(mesh.ep_group(1), (std::vector<int>{0, 1}));
  EXPECT_EQ(mesh.expert_dp_group(1), (std::vector<int>{1, 3}));
  EXPECT_EQ(mesh.first_local_expert(1, 8), 4);
  EXPECT_EQ(mesh.num_local_experts(8), 4);
  EXPECT_EQ(mesh.rank_of(1, 3), 7);
  expect_error([&] { mesh.coord(8); }, {"rank 8 outside [0, 8)"});
}

// Each kind of group covers every rank exactly once and agrees with the per-rank query.
void expect_partitions(const Mesh& mesh) {
  using Query = std::vector<int> (Mesh::*)(int64_t) const;
  using All = std::vector<std::vector<int>> (Mesh::*)() const;
  const std::vector<std::pair<Query, All>> kinds{{&Mesh::dp_group, &Mesh::all_dp_groups},
                                                 {&Mesh::ep_group, &Mesh::all_ep_groups},
                                                 {&Mesh::expert_dp_group, &Mesh::all_expert_dp_groups},
                                                 {&Mesh::pp_group, &Mesh::all_pp_groups}};
  for (const auto& [query, all] : kinds) {
    std::multiset<int> seen;
    for (const auto& group : (mesh.*all)()) {
      for (int r : group) {
        seen.insert(r);
        EXPECT_EQ((mesh.*query)(r), group);
      }
    }
    EXPECT_EQ(static_cast<int64_t>(seen.size()), mesh.world_size());
    EXPECT_EQ(static_cast<int64_t>(std::set<int>(seen.begin(), seen.end()).size()), mesh.world_size());
  }
  const auto& l = mesh.layout();
  for (int64_t r = 0; r < mesh.world_size(); ++r) {
    EXPECT_EQ(static_cast<int64_t>(mesh.ep_group(r).size()), l.ep);
    EXPECT_EQ(static_cast<int64_t>(mesh.expert_dp_group(r).size()), l.dp / l.ep);
    // ep x expert_dp = dp: the intersection of a rank's ep and expert-dp groups is the rank itself.
    const auto ep = mesh.ep_group(r), edp = mesh.expert_dp_group(r);
    std::vector<int> both;
    std::set_intersection(ep.begin(), ep.end(), edp.begin(), edp.end(), std::back_inserter(both));
    EXPECT_EQ(both, std::vector<int>{static_cast<int>(r)});
  }
}

TEST(Mesh, GroupsPartitionTheWorld) {
  for (const auto& l : {layout(1, 1, 1), layout(1, 4, 2), layout(2, 2, 2), layout(4, 2, 1), layout(2, 8, 4),
                        layout(3, 6, 3)}) {
    expect_partitions(Mesh(l));
  }
}

}  // namespace
}  // namespace k2f::parallel
