#include "parallel/process_groups.h"

#include "base/error.h"

namespace k2f::parallel {

namespace {
// Joins the one group of `all` containing this rank, creating the others' in the same order.
Group join(DistributedContext& ctx, const std::vector<std::vector<int>>& all, const std::string& tag) {
  Group mine;
  for (const auto& ranks : all) {
    auto group = ctx.new_group(ranks, tag);
    if (group.defined()) mine = group;
  }
  check(mine.defined(), "process group \"", tag, "\": rank ", ctx.rank(), " is in none of its groups");
  return mine;
}
}  // namespace

ProcessGroups create_process_groups(DistributedContext& ctx, const Mesh& mesh) {
  check(mesh.world_size() == ctx.world_size(), "the parallel layout has ", mesh.world_size(), " ranks, the launcher started ",
        ctx.world_size());
  ProcessGroups groups;
  groups.world = ctx.world;
  groups.coord = mesh.coord(ctx.rank());
  groups.dp = join(ctx, mesh.all_dp_groups(), "dp");
  groups.ep = join(ctx, mesh.all_ep_groups(), "ep");
  groups.expert_dp = join(ctx, mesh.all_expert_dp_groups(), "expert_dp");
  groups.pp = join(ctx, mesh.all_pp_groups(), "pp");
  return groups;
}

}  // namespace k2f::parallel
