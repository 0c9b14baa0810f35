#include "parallel/expert_dispatcher.h"

#include "base/error.h"
#include "model/layers.h"
#include "parallel/all_to_all.h"

namespace k2f::parallel {

namespace {

std::vector<int64_t> to_vector(const torch::Tensor& t) {
  const auto cpu = t.to(torch::kCPU, torch::kInt64).contiguous();
  return std::vector<int64_t>(cpu.data_ptr<int64_t>(), cpu.data_ptr<int64_t>() + cpu.numel());
}

torch::Tensor stable_argsort(const torch::Tensor& keys) {
  return std::get<1>(torch::sort(keys, /*stable=*/true, /*dim=*/0, /*descending=*/false));
}

}  // namespace

AllToAllExpertDispatcher::AllToAllExpertDispatcher(Group ep_group) : group_(std::move(ep_group)) {
  check(group_.defined(), "AllToAllExpertDispatcher: this rank is not in the expert-parallel group");
}

Dispatched AllToAllExpertDispatcher::dispatch(const torch::Tensor& x_ND, const torch::Tensor& expert_idx_NK,
                                              int64_t experts_per_rank) const {
  const int64_t P = group_->getSize(), L = experts_per_rank, E = P * L;
  check(L >= 1, "expert dispatch: ", L, " experts per rank");
  check(x_ND.dim() == 2 && expert_idx_NK.dim() == 2 && expert_idx_NK.size(0) == x_ND.size(0),
        "expert dispatch: x ", x_ND.sizes(), " and expert ids ", expert_idx_NK.sizes(), " disagree");
  const auto idx_M = expert_idx_NK.reshape({-1}).to(torch::kInt64);
  if (idx_M.numel() > 0) {
    const auto low = idx_M.min().item<int64_t>(), high = idx_M.max().item<int64_t>();
    check(low >= 0 && high < E, "expert dispatch: expert ids in [", low, ", ", high, "], the ep group holds ", E);
  }
  Dispatched out;
  auto& plan = out.plan;
  plan.num_tokens = x_ND.size(0);
  plan.x_dtype = x_ND.scalar_type();
  plan.order_M = stable_argsort(idx_M);  // by expert = by destination rank, then local expert
  plan.token_M = torch::div(plan.order_M, expert_idx_NK.size(1), "floor");

  // Counts first: recv_PL[p, l] = rows rank p sends to my local expert l.
  const auto send_E = torch::bincount(idx_M, {}, E);
  const std::vector<int64_t> per_rank_L(static_cast<size_t>(P), L);
  const auto recv_PL = all_to_all_rows(group_, send_E, per_rank_L, per_rank_L).view({P, L});
  plan.send_rows = to_vector(send_E.view({P, L}).sum(1));
  plan.recv_rows = to_vector(recv_PL.sum(1));
  plan.count_per_local = to_vector(recv_PL.sum(0));

  // Rows next, then regrouped from (source rank, local expert) to (local expert, source rank).
  const auto x_sent_MD = x_ND.index_select(0, plan.token_M);
  const auto x_recv_RD = differentiable_all_to_all(group_, x_sent_MD, plan.send_rows, plan.recv_rows);
  const auto local_R = torch::repeat_interleave(
      torch::arange(L, recv_PL.options()).repeat({P}), recv_PL.reshape({-1}));
  plan.group_R = stable_argsort(local_R);
  plan.ungroup_R = torch::empty_like(plan.group_R).scatter_(0, plan.group_R, torch::arange(plan.group_R.numel(), plan.group_R.options()));
  out.x_grouped_RD = x_recv_RD.index_select(0, plan.group_R);
  return out;
}

torch::Tensor AllToAllExpertDispatcher::combine(const torch::Tensor& y_grouped_RD, const DispatchPlan& plan,
                                                const torch::Tensor& weight_NK) const {
  check(y_grouped_RD.size(0) == plan.group_R.numel(), "expert combine: ", y_grouped_RD.size(0), " rows, dispatch sent ",
        plan.group_R.numel());
  const auto y_recv_RD = y_grouped_RD.index_select(0, plan.ungroup_R);
  const auto y_back_MD = differentiable_all_to_all(group_, y_recv_RD, plan.recv_rows, plan.send_rows);
  const auto weight_M1 = weight_NK.reshape({-1}).index_select(0, plan.order_M).unsqueeze(1);
  const auto wide = model::accumulate_dtype(plan.x_dtype);
  const auto weighted_MD = y_back_MD.to(wide) * weight_M1.to(wide);
  return torch::zeros({plan.num_tokens, y_grouped_RD.size(1)}, y_grouped_RD.options().dtype(wide))
      .index_add(0, plan.token_M, weighted_MD)
      .to(plan.x_dtype);
}

torch::Tensor AllToAllExpertDispatcher::dispatch_and_combine(const torch::Tensor& x_ND, const model::Routing& routing,
                                                             const model::RoutedExperts& local_experts) {
  const int64_t L = local_experts->num_local();
  check(local_experts->first_expert() == group_->getRank() * L, "expert dispatch: ep rank ", group_->getRank(),
        " must hold experts [", group_->getRank() * L, ", ", (group_->getRank() + 1) * L, "), it holds [",
        local_experts->first_expert(), ", ", local_experts->first_expert() + L, ")");
  auto dispatched = dispatch(x_ND, routing.expert_idx_NK, L);
  const auto y_grouped_RD = local_experts->forward_sorted(dispatched.x_grouped_RD, dispatched.plan.count_per_local);
  return combine(y_grouped_RD, dispatched.plan, routing.weight_NK);
}

}  // namespace k2f::parallel
