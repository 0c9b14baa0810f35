#include "parallel/mesh.h"

#include "base/error.h"

namespace k2f::parallel {

void ParallelLayout::validate(int64_t world_size, const model::ModelConfig& model, const std::string& prefix) const {
  const std::string p = prefix + ".";
  check(pp >= 1, p, "pp (", pp, ") must be >= 1");
  check(dp >= 1, p, "dp (", dp, ") must be >= 1");
  check(ep >= 1, p, "ep (", ep, ") must be >= 1");
  check(virtual_stages >= 1, p, "virtual_stages (", virtual_stages, ") must be >= 1");
  check(pp * dp == world_size, p, "pp (", pp, ") x ", p, "dp (", dp, ") = ", pp * dp, " must equal the number of ranks (",
        world_size, ")");
  check(dp % ep == 0, p, "ep (", ep, ") must divide ", p, "dp (", dp, ")");
  if (ep > 1) {
    check(model.n_routed_experts > 0, p, "ep (", ep, ") needs routed experts, but model.n_routed_experts is 0");
    check(model.n_routed_experts % ep == 0, p, "ep (", ep, ") must divide model.n_routed_experts (",
          model.n_routed_experts, ")");
  }
  check(pp * virtual_stages <= model.num_hidden_layers, p, "pp (", pp, ") x ", p, "virtual_stages (", virtual_stages,
        ") = ", pp * virtual_stages, " pipeline chunks exceed model.num_hidden_layers (", model.num_hidden_layers, ")");
  check(schedule == "gpipe" || schedule == "1f1b" || schedule == "interleaved", p, "schedule (\"", schedule,
        "\") must be one of gpipe, 1f1b, interleaved");
  if (schedule == "interleaved") {
    check(virtual_stages > 1, p, "schedule \"interleaved\" needs ", p, "virtual_stages > 1 (got ", virtual_stages, ")");
    check(pp > 1, p, "schedule \"interleaved\" needs ", p, "pp > 1 (got ", pp, ")");
  } else {
    check(virtual_stages == 1, p, "virtual_stages (", virtual_stages, ") > 1 needs ", p,
          "schedule \"interleaved\" (got \"", schedule, "\")");
  }
}

Mesh::Mesh(const ParallelLayout& layout) : layout_(layout) {
  check(layout.pp >= 1 && layout.dp >= 1 && layout.ep >= 1 && layout.dp % layout.ep == 0,
        "Mesh: invalid layout pp ", layout.pp, " dp ", layout.dp, " ep ", layout.ep, " (validate it first)");
}

MeshCoord Mesh::coord(int64_t rank) const {
  check(rank >= 0 && rank < world_size(), "Mesh: rank ", rank, " outside [0, ", world_size(), ")");
  MeshCoord c;
  c.pp_rank = rank / layout_.dp;
  c.dp_rank = rank % layout_.dp;
  c.ep_rank = c.dp_rank % layout_.ep;
  c.expert_replica = c.dp_rank / layout_.ep;
  return c;
}

std::vector<int> Mesh::dp_group(int64_t rank) const {
  const auto c = coord(rank);
  std::vector<int> ranks;
  for (int64_t d = 0; d < layout_.dp; ++d) ranks.push_back(static_cast<int>(rank_of(c.pp_rank, d)));
  return ranks;
}

std::vector<int> Mesh::ep_group(int64_t rank) const {
  const auto c = coord(rank);
  std::vector<int> ranks;
  for (int64_t e = 0; e < layout_.ep; ++e) {
    ranks.push_back(static_cast<int>(rank_of(c.pp_rank, c.expert_replica * layout_.ep + e)));
  }
  return ranks;
}

std::vector<int> Mesh::expert_dp_group(int64_t rank) const {
  const auto c = coord(rank);
  std::vector<int> ranks;
  for (int64_t r = 0; r < layout_.dp / layout_.ep; ++r) {
    ranks.push_back(static_cast<int>(rank_of(c.pp_rank, r * layout_.ep + c.ep_rank)));
  }
  return ranks;
}

std::vector<int> Mesh::pp_group(int64_t rank) const {
  const auto c = coord(rank);
  std::vector<int> ranks;
  for (int64_t s = 0; s < layout_.pp; ++s) ranks.push_back(static_cast<int>(rank_of(s, c.dp_rank)));
  return ranks;
}

namespace {
// The distinct groups produced by `group_of` over all ranks, in order of their lowest rank.
template <typename GroupOf>
std::vector<std::vector<int>> distinct_groups(int64_t world_size, GroupOf group_of) {
  std::vector<std::vector<int>> groups;
  for (int64_t rank = 0; rank < world_size; ++rank) {
    auto group = group_of(rank);
    if (group.front() == rank) groups.push_back(std::move(group));
  }
  return groups;
}
}  // namespace

std::vector<std::vector<int>> Mesh::all_dp_groups() const {
  return distinct_groups(world_size(), [this](int64_t r) { return dp_group(r); });
}
std::vector<std::vector<int>> Mesh::all_ep_groups() const {
  return distinct_groups(world_size(), [this](int64_t r) { return ep_group(r); });
}
std::vector<std::vector<int>> Mesh::all_expert_dp_groups() const {
  return distinct_groups(world_size(), [this](int64_t r) { return expert_dp_group(r); });
}
std::vector<std::vector<int>> Mesh::all_pp_groups() const {
  return distinct_groups(world_size(), [this](int64_t r) { return pp_group(r); });
}

int64_t Mesh::first_local_expert(int64_t ep_rank, int64_t n_routed_experts) const {
  check(ep_rank >= 0 && ep_rank < layout_.ep, "Mesh: ep rank ", ep_rank, " outside [0, ", layout_.ep, ")");
  return ep_rank * num_local_experts(n_routed_experts);
}

}  // namespace k2f::parallel
