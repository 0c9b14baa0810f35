// The process groups of this rank for a mesh: data-parallel, expert-parallel, expert-data-parallel
// and pipeline. Creation blocks until every member arrives, so all ranks walk the same global list
// of groups in the same order and each joins the ones it belongs to: no rank waits on a group
// whose other members are still waiting on an earlier one.
#pragma once

#include "parallel/bootstrap.h"
#include "parallel/mesh.h"

namespace k2f::parallel {

struct ProcessGroups {
  Group world;
  Group dp;         // dense parameters' gradients, ZeRO-1 shards
  Group ep;         // the all-to-all of the MoE dispatcher
  Group expert_dp;  // routed expert parameters' gradients (ranks holding the same experts)
  Group pp;         // activations and gradients between stages
  MeshCoord coord;
};

// Collective over the world: every rank must call it with the same mesh.
ProcessGroups create_process_groups(DistributedContext& ctx, const Mesh& mesh);

}  // namespace k2f::parallel
