// parallel/zero1.cpp across ranks: each rank ends with the summed gradient of exactly the pieces
// it holds (whole matrices it owns, its rows of split parameters) and no gradient elsewhere; after
// each rank writes its pieces, the broadcast leaves every rank with the same full parameters,
// each piece from its holder.
#include <gtest/gtest.h>

#include "dist_context.h"
#include "parallel/process_groups.h"
#include "parallel/zero1.h"

namespace k2f::parallel {
namespace {

using testing::dist;

TEST(Zero1Dist, GradientsReachTheirHoldersAndUpdatesReachEveryone) {
  const int64_t W = dist().world_size();
  ParallelLayout layout;
  layout.dp = W;
  layout.ep = W % 2 == 0 ? 2 : 1;
  const Mesh mesh(layout);
  const auto groups = create_process_groups(dist(), mesh);
  const int r = dist().rank();
  const auto coord = mesh.coord(r);
  NamedParameters params{{"model.embed_tokens.weight", torch::zeros({7, 3})},
                         {"model.layers.1.self_attn.o_proj.weight", torch::zeros({3, 3})},
                         {"model.layers.1.mlp.experts.0.up_proj.weight", torch::zeros({4, 3}, torch::kFloat64)},
                         {"model.layers.1.mlp.experts.1.up_proj.weight", torch::zeros({4, 3}, torch::kFloat64)},
                         {"model.layers.1.mlp.gate.weight", torch::zeros({5, 3})},
                         {"model.norm.weight", torch::zeros({3})}};
  const std::vector<bool> elementwise{true, false, false, false, false, true};
  for (size_t i = 0; i < params.size(); ++i) {
    params[i].second.requires_grad_(true);
    if (!(i == 4 && r == 0)) {  // rank 0 has no gradient for the router: zeros
      params[i].second.mutable_grad() = torch::full_like(params[i].second, static_cast<double>((r + 1) * (i + 1)));
    }
  }
  const auto shards = plan_shards(params, elementwise, static_cast<int>(layout.dp), static_cast<int>(layout.dp / layout.ep));
  reduce_gradients_for_shards(params, shards, groups.dp, groups.expert_dp);
  for (size_t i = 0; i < params.size(); ++i) {
    const bool expert = is_routed_expert_parameter(params[i].first);
    const int me = static_cast<int>(expert ? coord.expert_replica : coord.dp_rank);
    const auto& ranks = expert ? mesh.expert_dp_group(r) : mesh.dp_group(r);
    double sum = 0;
    for (int m : ranks) sum += (i == 4 && m == 0) ? 0 : m + 1;
    const auto& grad = params[i].second.grad();
    if (!shards[i].held_by(me)) {
      EXPECT_FALSE(grad.defined()) << params[i].first;
      continue;
    }
    ASSERT_TRUE(grad.defined()) << params[i].first;
    const auto held = shards[i].rows_split ? grad.narrow(0, shards[i].row_offset(me), shards[i].row_count(me)) : grad;
    EXPECT_TRUE(torch::equal(held, torch::full_like(held, sum * static_cast<double>(i + 1)))) << params[i].first;
  }
  // Each holder writes 100 x (its group rank + 1) into its pieces; the broadcast spreads them.
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) {
      const bool expert = is_routed_expert_parameter(params[i].first);
      const int me = static_cast<int>(expert ? coord.expert_replica : coord.dp_rank);
      if (!shards[i].held_by(me)) continue;
      auto p = params[i].second.detach();
      auto held = shards[i].rows_split ? p.narrow(0, shards[i].row_offset(me), shards[i].row_count(me)) : p;
      held.fill_(100.0 * (me + 1));
    }
  }
  broadcast_updated_shards(params, shards, groups.dp, groups.expert_dp);
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& p = params[i].second;
    const auto& shard = shards[i];
    for (int holder = 0; holder < shard.group_size; ++holder) {
      if (!shard.held_by(holder)) continue;
      const auto piece = shard.rows_split ? p.narrow(0, shard.row_offset(holder), shard.row_count(holder)) : p;
      EXPECT_TRUE(torch::equal(piece, torch::full_like(piece, 100.0 * (holder + 1)))) << params[i].first << " from " << holder;
    }
  }
}

}  // namespace
}  // namespace k2f::parallel
