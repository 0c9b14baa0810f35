// ZeRO-1: optimizer state sharded over the ranks that replicate a parameter (the dp group for
// dense parameters, the expert-data-parallel group for routed experts), in two ways:
// - a matrix that Muon updates is owned whole by one rank: its gradient is summed onto the owner
//   only, the owner orthogonalises the full matrix and updates it (distributed Muon,
//   K2_REFERENCE section 4), and broadcasts the new values to the group;
// - a parameter that an element-wise rule (AdamW) updates has its rows split evenly over the
//   group: every rank keeps the state of its rows only, updates them from the summed gradient, and
//   the rows are broadcast from each rank to the others.
// Owners of whole matrices are picked largest first onto the least-loaded rank. Every choice is a
// function of names and shapes, the same on every rank, so each rank's optimizer memory is about
// 1 / group size of the whole without any communication to plan it.
#pragma once

#include <cstdint>
#include <vector>

#include "parallel/comm.h"
#include "parallel/grad_sync.h"

namespace k2f::parallel {

struct ParameterShard {
  bool rows_split = false;  // element-wise rule: rows [first_row(r), first_row(r + 1)) on group rank r
  int owner = 0;            // otherwise the group rank holding the whole parameter
  int64_t rows = 0;         // size of dim 0
  int group_size = 1;
  int64_t first_row(int group_rank) const { return rows * group_rank / group_size; }
  // Does group rank `r` update (part of) this parameter, and which rows.
  bool held_by(int group_rank) const { return rows_split || owner == group_rank; }
  int64_t row_count(int group_rank) const {
    return rows_split ? first_row(group_rank + 1) - first_row(group_rank) : rows;
  }
  int64_t row_offset(int group_rank) const { return rows_split ? first_row(group_rank) : 0; }
};

// The owning group rank of each tensor, from their element counts (deterministic, balanced).
std::vector<int> assign_owners(const std::vector<int64_t>& numels, int group_size);

// The shard of each parameter: routed experts over `expert_dp_size` ranks, everything else over
// `dp_size`; `elementwise[i]`: parameter i's update rule works element by element (its rows split).
std::vector<ParameterShard> plan_shards(const NamedParameters& parameters, const std::vector<bool>& elementwise,
                                        int dp_size, int expert_dp_size);

// The summed gradients where the optimizer needs them: row-split parameters' are all-reduced, each
// whole-owned parameter's is reduced onto its owner (other ranks' copies are released). A missing
// gradient counts as zeros. Collective over both groups.
void reduce_gradients_for_shards(const NamedParameters& parameters, const std::vector<ParameterShard>& shards,
                                 const Group& dp_group, const Group& expert_dp_group);

// Copies every updated piece (whole parameters from their owners, rows from the rank that holds
// them) to the rest of its group. Collective over both groups.
void broadcast_updated_shards(const NamedParameters& parameters, const std::vector<ParameterShard>& shards,
                              const Group& dp_group, const Group& expert_dp_group);

}  // namespace k2f::parallel
