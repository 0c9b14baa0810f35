// The parallel layout and the rank mesh it implies: world = pp x dp, pipeline stages outermost, and
// expert parallelism inside data parallelism (ep consecutive dp ranks split the routed experts;
// the dp/ep groups of ranks holding the same experts replicate them). Pure functions of the
// layout, so every rank computes every group without communicating, and tests need no processes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace k2f::parallel {

struct ParallelLayout {
  int64_t pp = 1;
  int64_t dp = 1;
  int64_t ep = 1;
  int64_t virtual_stages = 1;       // model chunks per pipeline rank (interleaved 1F1B)
  std::string schedule = "1f1b";    // "gpipe" | "1f1b" | "interleaved"
  bool zero1 = false;               // optimizer state sharded over dp

  // Throws k2f::Error quoting the dotted recipe keys ("parallel.ep (3) must divide parallel.dp (4)").
  void validate(int64_t world_size, const model::ModelConfig& model, const std::string& prefix = "parallel") const;
};

// Where one global rank sits in the mesh.
struct MeshCoord {
  int64_t pp_rank = 0;       // pipeline stage
  int64_t dp_rank = 0;       // index inside the stage's data-parallel group
  int64_t ep_rank = 0;       // index inside the expert-parallel group = which expert slice it holds
  int64_t expert_replica = 0;  // which copy of that slice (index inside the expert-data-parallel group)
};

class Mesh {
 public:
  // `layout` must be valid (ParallelLayout::validate) for pp * dp ranks.
  explicit Mesh(const ParallelLayout& layout);

  int64_t world_size() const { return layout_.pp * layout_.dp; }
  const ParallelLayout& layout() const { return layout_; }
  MeshCoord coord(int64_t rank) const;
  int64_t rank_of(int64_t pp_rank, int64_t dp_rank) const { return pp_rank * layout_.dp + dp_rank; }

  // The ranks of each group that `rank` belongs to, ascending.
  std::vector<int> dp_group(int64_t rank) const;         // same stage, all dp ranks
  std::vector<int> ep_group(int64_t rank) const;         // same stage, ep consecutive dp ranks
  std::vector<int> expert_dp_group(int64_t rank) const;  // same stage, same expert slice (dp/ep ranks)
  std::vector<int> pp_group(int64_t rank) const;         // same dp rank, every stage

  // Every group of a kind, in a fixed order the same on all ranks (for creating process groups).
  std::vector<std::vector<int>> all_dp_groups() const;
  std::vector<std::vector<int>> all_ep_groups() const;
  std::vector<std::vector<int>> all_expert_dp_groups() const;
  std::vector<std::vector<int>> all_pp_groups() const;

  // Routed experts [first, first + count) held by ranks with this ep_rank.
  int64_t first_local_expert(int64_t ep_rank, int64_t n_routed_experts) const;
  int64_t num_local_experts(int64_t n_routed_experts) const { return n_routed_experts / layout_.ep; }

 private:
  ParallelLayout layout_;
};

}  // namespace k2f::parallel
