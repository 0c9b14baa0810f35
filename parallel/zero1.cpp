#include "parallel/zero1.h"

#include <algorithm>
#include <numeric>

#include "base/error.h"

namespace k2f::parallel {

std::vector<int> assign_owners(const std::vector<int64_t>& numels, int group_size) {
  check(group_size >= 1, "ZeRO-1: group size ", group_size, " must be >= 1");
  std::vector<size_t> order(numels.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return numels[a] > numels[b]; });
  std::vector<int64_t> load(static_cast<size_t>(group_size), 0);
  std::vector<int> owners(numels.size(), 0);
  for (size_t i : order) {
    const auto lightest = std::min_element(load.begin(), load.end()) - load.begin();  // the lowest rank on ties
    owners[i] = static_cast<int>(lightest);
    load[static_cast<size_t>(lightest)] += numels[i];
  }
  return owners;
}

std::vector<ParameterShard> plan_shards(const NamedParameters& parameters, const std::vector<bool>& elementwise,
                                        int dp_size, int expert_dp_size) {
  check(elementwise.size() == parameters.size(), "ZeRO-1: ", elementwise.size(), " update rules for ",
        parameters.size(), " parameters");
  std::vector<ParameterShard> shards(parameters.size());
  for (const bool experts : {false, true}) {
    const int group_size = experts ? expert_dp_size : dp_size;
    std::vector<size_t> whole;
    std::vector<int64_t> numels;
    for (size_t i = 0; i < parameters.size(); ++i) {
      if (is_routed_expert_parameter(parameters[i].first) != experts) continue;
      const auto& p = parameters[i].second;
      auto& shard = shards[i];
      shard.rows = p.dim() == 0 ? 1 : p.size(0);
      shard.group_size = group_size;
      shard.rows_split = elementwise[i] && p.dim() > 0;
      if (!shard.rows_split) {
        whole.push_back(i);
        numels.push_back(p.numel());
      }
    }
    const auto owners = assign_owners(numels, group_size);
    for (size_t k = 0; k < whole.size(); ++k) shards[whole[k]].owner = owners[k];
  }
  return shards;
}

namespace {

// The rows of `t` that group rank `r` holds under `shard` (the whole tensor for its owner), or
// an undefined tensor when it holds none.
torch::Tensor piece(const torch::Tensor& t, const ParameterShard& shard, int r) {
  if (!shard.held_by(r)) return torch::Tensor();
  if (!shard.rows_split) return t;
  return t.narrow(0, shard.row_offset(r), shard.row_count(r));
}

// For each group rank r in turn: the pieces r holds of the listed tensors, flattened into one
// buffer per dtype, handed to `exchange(flat, r)`, then copied back into the pieces where
// `copy_back(r)` says so. The same buffers in the same order on every rank.
template <typename Exchange, typename CopyBack>
void exchange_pieces(const std::vector<torch::Tensor>& tensors, const std::vector<ParameterShard>& shards,
                     int group_size, Exchange exchange, CopyBack copy_back) {
  for (int r = 0; r < group_size; ++r) {
    std::vector<c10::ScalarType> dtypes;
    std::vector<std::vector<torch::Tensor>> by_dtype;
    for (size_t i = 0; i < tensors.size(); ++i) {
      auto t = piece(tensors[i], shards[i], r);
      if (!t.defined() || t.numel() == 0) continue;
      const auto found = std::find(dtypes.begin(), dtypes.end(), t.scalar_type());
      if (found == dtypes.end()) {
        dtypes.push_back(t.scalar_type());
        by_dtype.push_back({t});
      } else {
        by_dtype[static_cast<size_t>(found - dtypes.begin())].push_back(t);
      }
    }
    for (auto& pieces : by_dtype) {
      std::vector<torch::Tensor> flat_parts;
      for (const auto& t : pieces) flat_parts.push_back(t.reshape({-1}));
      auto flat = torch::cat(flat_parts);
      exchange(flat, r);
      if (!copy_back(r)) continue;
      int64_t offset = 0;
      for (auto& t : pieces) {
        t.copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
        offset += t.numel();
      }
    }
  }
}

// One replication group's share of reduce_gradients_for_shards / broadcast_updated_shards.
struct GroupShare {
  std::vector<size_t> indices;
  const Group* group = nullptr;
};

std::vector<GroupShare> group_shares(const NamedParameters& parameters, const Group& dp_group,
                                     const Group& expert_dp_group) {
  std::vector<GroupShare> shares{{{}, &dp_group}, {{}, &expert_dp_group}};
  for (size_t i = 0; i < parameters.size(); ++i)
    shares[is_routed_expert_parameter(parameters[i].first) ? 1 : 0].indices.push_back(i);
  return shares;
}

}  // namespace

void reduce_gradients_for_shards(const NamedParameters& parameters, const std::vector<ParameterShard>& shards,
                                 const Group& dp_group, const Group& expert_dp_group) {
  check(shards.size() == parameters.size(), "ZeRO-1: ", shards.size(), " shards for ", parameters.size(), " parameters");
  for (const auto& share : group_shares(parameters, dp_group, expert_dp_group)) {
    if (share.indices.empty()) continue;
    const Group& group = *share.group;
    check(group.defined(), "ZeRO-1 gradient reduce: this rank is not in the group");
    std::vector<torch::Tensor> split_params, whole_grads;
    std::vector<ParameterShard> whole_shards;
    for (size_t i : share.indices) {
      const auto& p = parameters[i].second;
      if (shards[i].rows_split) {
        split_params.push_back(p);
        continue;
      }
      auto& grad = p.mutable_grad();
      if (!grad.defined()) grad = torch::zeros_like(p);
      whole_grads.push_back(grad);
      whole_shards.push_back(shards[i]);
    }
    if (!split_params.empty()) all_reduce_gradients(split_params, group);
    const int me = group->getRank();
    if (group->getSize() > 1) {
      exchange_pieces(
          whole_grads, whole_shards, group->getSize(),
          [&](torch::Tensor& flat, int owner) {
            std::vector<torch::Tensor> buffers{flat};
            c10d::ReduceOptions options;
            options.rootRank = owner;
            options.reduceOp = c10d::ReduceOp::SUM;
            wait_for(group->reduce(buffers, options));
          },
          [&](int owner) { return owner == me; });
    }
    for (size_t i : share.indices)
      if (!shards[i].held_by(me)) parameters[i].second.mutable_grad() = torch::Tensor();
  }
}

void broadcast_updated_shards(const NamedParameters& parameters, const std::vector<ParameterShard>& shards,
                              const Group& dp_group, const Group& expert_dp_group) {
  check(shards.size() == parameters.size(), "ZeRO-1: ", shards.size(), " shards for ", parameters.size(), " parameters");
  torch::NoGradGuard no_grad;
  for (const auto& share : group_shares(parameters, dp_group, expert_dp_group)) {
    if (share.indices.empty()) continue;
    const Group& group = *share.group;
    if (group->getSize() == 1) continue;
    std::vector<torch::Tensor> values;
    std::vector<ParameterShard> value_shards;
    for (size_t i : share.indices) {
      values.push_back(parameters[i].second.detach());
      value_shards.push_back(shards[i]);
    }
    const int me = group->getRank();
    exchange_pieces(
        values, value_shards, group->getSize(),
        [&](torch::Tensor& flat, int holder) { broadcast(group, flat, holder); },
        [&](int holder) { return holder != me; });
  }
}

}  // namespace k2f::parallel
