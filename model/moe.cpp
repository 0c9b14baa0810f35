#include "model/moe.h"

namespace k2f::model {

torch::Tensor LocalExpertDispatcher::dispatch_and_combine(const torch::Tensor& x_ND, const Routing& routing,
                                                          const RoutedExperts& local_experts) {
  return local_experts->forward_grouped(x_ND, routing.expert_idx_NK, routing.weight_NK);
}

MoEImpl::MoEImpl(const ModelConfig& c, int64_t first_local_expert, int64_t num_local_experts)
    : dispatcher_(std::make_shared<LocalExpertDispatcher>()), num_routed_experts_(c.n_routed_experts) {
  if (num_local_experts < 0) num_local_experts = c.n_routed_experts;
  gate = register_module("gate", Router(c));
  experts = register_module(
      "experts", RoutedExperts(c.hidden_size, c.moe_intermediate_size, first_local_expert, num_local_experts));
  if (c.n_shared_experts > 0) {
    shared_experts =
        register_module("shared_experts", MLP(c.hidden_size, c.moe_intermediate_size * c.n_shared_experts));
  }
}

torch::Tensor MoEImpl::forward(const torch::Tensor& x_BTD) {
  const auto x_ND = x_BTD.reshape({-1, x_BTD.size(-1)});
  auto routing = gate->forward(x_ND);
  last_expert_load_E = torch::bincount(routing.expert_idx_NK.reshape({-1}), {}, num_routed_experts_).detach();
  auto y_ND = dispatcher_->dispatch_and_combine(x_ND, routing, experts);
  if (shared_experts) y_ND = y_ND + shared_experts->forward(x_ND);
  if (keep_expert_idx) last_expert_idx_NK = routing.expert_idx_NK;
  if (keep_routing) last_routing = std::move(routing);
  return y_ND.view(x_BTD.sizes());
}

}  // namespace k2f::model
