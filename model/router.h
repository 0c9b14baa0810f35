// The MoE router of Kimi-K2 / DeepSeek-V3 ("noaux_tc"): fp32 logits, sigmoid (or softmax) scores,
// a correction bias that only CHOOSES experts (the weights stay unbiased), group-limited top-k,
// normalisation and routed scaling. The math is a pure function (`route`) testable alone.
// Legend: N tokens, D hidden, E routed experts, G groups, K experts per token.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "model/config.h"
#include "model/layers.h"

namespace k2f::model {

struct RoutingOptions {
  std::string scoring_func = "sigmoid";
  std::string topk_method = "noaux_tc";
  int64_t top_k = 8;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  bool norm_topk_prob = true;
  double routed_scaling_factor = 1.0;
  static RoutingOptions from_config(const ModelConfig& config);
};

struct Routing {
  torch::Tensor expert_idx_NK;  // int64
  torch::Tensor weight_NK;      // fp32
  torch::Tensor scores_NE;      // fp32 sigmoid/softmax scores (for the sequence-wise aux loss)
};

// logits_NE fp32; correction_bias_E fp32 (used only when topk_method is noaux_tc).
Routing route(const torch::Tensor& logits_NE, const torch::Tensor& correction_bias_E, const RoutingOptions& options);

// Routing to experts chosen beforehand (routing replay, model/routing_replay.h): token n goes to
// chosen_NK[n] (any integer dtype) with the weights route() gives those experts (the scores there,
// normalised and scaled), so gradients still reach the router weights. A row holding a negative id
// chooses freely, as route() would. Throws when a row is not [N, K] or names an expert outside [0, E).
Routing route_to_chosen(const torch::Tensor& logits_NE, const torch::Tensor& correction_bias_E,
                        const torch::Tensor& chosen_NK, const RoutingOptions& options);

class RouterImpl : public torch::nn::Module {
 public:
  RouterImpl(const ModelConfig& config);
  Routing forward(const torch::Tensor& x_ND) const;
  torch::Tensor weight;                  // [E, D] fp32, HF "mlp.gate.weight"
  torch::Tensor e_score_correction_bias;  // [E] fp32 buffer, updated by load balancing, not by gradients
  RoutingOptions options;
  // Logits and scores in fp64 (weights and scores handed on in the usual dtype): for comparing
  // parallel layouts, where fp32 rounding differences could flip a near-tie in the top-k.
  bool route_in_fp64 = false;
  // When defined: forward routes to these experts (route_to_chosen) until it is reset; set from
  // outside the model by model/routing_replay.h.
  torch::Tensor chosen_experts_NK;
};
TORCH_MODULE(Router);

}  // namespace k2f::model
