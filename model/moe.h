// The MoE layer as four steps: route -> dispatch -> expert compute -> combine. Dispatch and
// combine are delegated to an ExpertDispatcher: the default runs the experts locally; expert
// parallelism (parallel/) plugs in an all-to-all dispatcher from outside. The model itself
// never communicates.
// Legend: B batch, T tokens, N = B*T, D hidden, E routed experts.
#pragma once

#include <memory>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "model/config.h"
#include "model/experts.h"
#include "model/layers.h"
#include "model/router.h"

namespace k2f::model {

// The routed experts of each MoE layer that one rank holds: [first, first + count); count -1 = all.
// Expert parallelism builds each rank's model with its slice (names keep the global expert ids).
struct ExpertSlice {
  int64_t first = 0;
  int64_t count = -1;
};

class ExpertDispatcher {
 public:
  virtual ~ExpertDispatcher() = default;
  // Sends each token to its experts (wherever they live), runs them, returns the weighted sum [N, D].
  virtual torch::Tensor dispatch_and_combine(const torch::Tensor& x_ND, const Routing& routing,
                                             const RoutedExperts& local_experts) = 0;
};

class LocalExpertDispatcher : public ExpertDispatcher {
 public:
  torch::Tensor dispatch_and_combine(const torch::Tensor& x_ND, const Routing& routing,
                                     const RoutedExperts& local_experts) override;
};

class MoEImpl : public torch::nn::Module {
 public:
  // Holds routed experts [first_local_expert, first_local_expert + num_local_experts); -1 = all.
  explicit MoEImpl(const ModelConfig& config, int64_t first_local_expert = 0, int64_t num_local_experts = -1);
  torch::Tensor forward(const torch::Tensor& x_BTD);

  void set_dispatcher(std::shared_ptr<ExpertDispatcher> dispatcher) { dispatcher_ = std::move(dispatcher); }

  Router gate{nullptr};
  RoutedExperts experts{nullptr};
  MLP shared_experts{nullptr};  // absent when n_shared_experts is 0

  // Tokens routed to each expert in the last forward (int64 [E]), for load balancing and metrics.
  torch::Tensor last_expert_load_E;
  // The last forward's routing (scores for the sequence-wise aux loss), kept only when asked.
  bool keep_routing = false;
  Routing last_routing;
  // The last forward's chosen experts alone (int64 [N, K]), kept only when asked (routing replay
  // records them during generation, where keeping the [N, E] scores of every layer would not fit).
  bool keep_expert_idx = false;
  torch::Tensor last_expert_idx_NK;

 private:
  std::shared_ptr<ExpertDispatcher> dispatcher_;
  int64_t num_routed_experts_;
};
TORCH_MODULE(MoE);

}  // namespace k2f::model
