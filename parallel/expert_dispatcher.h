// Expert parallelism: the routed experts of a layer are split over the ep group, and each token
// travels to the ranks holding its experts and back. Dispatch sorts the (token, expert) pairs by
// destination, exchanges counts, then rows (variable splits); the owner regroups them by local
// expert and runs them as contiguous blocks; combine reverses both moves and applies the routing
// weights in fp32 on the token's own rank, exactly as RoutedExperts::forward_grouped does locally.
// Legend: N tokens here, K experts per token, M = N*K pairs sent, R rows received, D hidden,
// P ranks in the ep group, L experts per rank, E = P*L routed experts.
#pragma once

#include <vector>

#include "model/moe.h"
#include "parallel/comm.h"

namespace k2f::parallel {

// Everything combine needs to undo a dispatch.
struct DispatchPlan {
  int64_t num_tokens = 0;            // N
  torch::ScalarType x_dtype = torch::kFloat32;
  torch::Tensor order_M;             // flattened (n, k) pair index, sorted by destination expert
  torch::Tensor token_M;             // token of each sorted pair
  std::vector<int64_t> send_rows;    // [P] pairs sent to each rank
  std::vector<int64_t> recv_rows;    // [P] rows received from each rank
  torch::Tensor group_R;             // received rows (by source rank) -> rows grouped by local expert
  torch::Tensor ungroup_R;           // its inverse permutation
  std::vector<int64_t> count_per_local;  // [L] rows per local expert after grouping
};

struct Dispatched {
  torch::Tensor x_grouped_RD;  // rows for local expert 0, then 1, ... (count_per_local each)
  DispatchPlan plan;
};

class AllToAllExpertDispatcher : public model::ExpertDispatcher {
 public:
  // `ep_group` orders the ranks by expert slice: its rank p holds experts [p*L, (p+1)*L).
  explicit AllToAllExpertDispatcher(Group ep_group);

  // Collective over the ep group. expert_idx_NK holds global expert ids in [0, P*experts_per_rank).
  Dispatched dispatch(const torch::Tensor& x_ND, const torch::Tensor& expert_idx_NK, int64_t experts_per_rank) const;
  // Collective over the ep group: y_grouped_RD (rows as dispatched) back to their tokens, weighted.
  torch::Tensor combine(const torch::Tensor& y_grouped_RD, const DispatchPlan& plan, const torch::Tensor& weight_NK) const;

  torch::Tensor dispatch_and_combine(const torch::Tensor& x_ND, const model::Routing& routing,
                                     const model::RoutedExperts& local_experts) override;

  const Group& group() const { return group_; }

 private:
  Group group_;
};

}  // namespace k2f::parallel
