#include "model/router.h"

#include <torch/nn/functional/linear.h>

#include "base/error.h"

namespace k2f::model {

RoutingOptions RoutingOptions::from_config(const ModelConfig& c) {
  RoutingOptions o;
  o.scoring_func = c.scoring_func;
  o.topk_method = c.topk_method;
  o.top_k = c.num_experts_per_tok;
  o.n_group = c.n_group;
  o.topk_group = c.topk_group;
  o.norm_topk_prob = c.norm_topk_prob;
  o.routed_scaling_factor = c.routed_scaling_factor;
  return o;
}

namespace {

// Keeps only the experts of the `topk_group` best groups of each token; the others get -inf so
// no expert of a discarded group can be picked (HF writes 0.0, which equals -inf whenever the
// kept choices are positive, as sigmoid scores plus a small bias are).
torch::Tensor limit_to_best_groups(const torch::Tensor& choice_NE, const RoutingOptions& o) {
  const int64_t N = choice_NE.size(0), E = choice_NE.size(1), G = o.n_group;
  const auto grouped_NGX = choice_NE.view({N, G, E / G});
  const auto group_score_NG = o.topk_method == "noaux_tc"
                                  ? std::get<0>(grouped_NGX.topk(std::min<int64_t>(2, E / G), -1)).sum(-1)
                                  : std::get<0>(grouped_NGX.max(-1));
  const auto best_groups = std::get<1>(group_score_NG.topk(o.topk_group, -1));
  const auto keep_NG = torch::zeros({N, G}, choice_NE.options().dtype(torch::kBool)).scatter(1, best_groups, true);
  const auto keep_NE = keep_NG.unsqueeze(-1).expand({N, G, E / G}).reshape({N, E});
  return choice_NE.masked_fill(keep_NE.logical_not(), -std::numeric_limits<float>::infinity());
}

// The combine weights of the chosen experts: their (unbiased) scores, normalised over the top-k
// when asked, times the routed scaling factor.
torch::Tensor expert_weights(const torch::Tensor& scores_NE, const torch::Tensor& expert_idx_NK, const RoutingOptions& o) {
  auto weight_NK = scores_NE.gather(1, expert_idx_NK);
  if (o.top_k > 1 && o.norm_topk_prob) weight_NK = weight_NK / (weight_NK.sum(-1, true) + 1e-20);
  return weight_NK * o.routed_scaling_factor;
}

}  // namespace

Routing route(const torch::Tensor& logits_NE, const torch::Tensor& correction_bias_E, const RoutingOptions& o) {
  Routing r;
  r.scores_NE = o.scoring_func == "sigmoid" ? torch::sigmoid(logits_NE) : torch::softmax(logits_NE, -1);
  auto choice_NE = o.topk_method == "noaux_tc" ? r.scores_NE + correction_bias_E : r.scores_NE;
  if (o.n_group > 1 && o.topk_method != "greedy") choice_NE = limit_to_best_groups(choice_NE, o);
  r.expert_idx_NK = std::get<1>(choice_NE.topk(o.top_k, -1));
  r.weight_NK = expert_weights(r.scores_NE, r.expert_idx_NK, o);
  return r;
}

Routing route_to_chosen(const torch::Tensor& logits_NE, const torch::Tensor& correction_bias_E,
                        const torch::Tensor& chosen_NK, const RoutingOptions& o) {
  const int64_t N = logits_NE.size(0), E = logits_NE.size(1);
  check(chosen_NK.dim() == 2 && chosen_NK.size(0) == N && chosen_NK.size(1) == o.top_k,
        "routing replay: chosen experts of shape ", chosen_NK.sizes(), " for ", N, " tokens of ", o.top_k,
        " experts each (expected [", N, ", ", o.top_k, "])");
  check(chosen_NK.numel() == 0 || chosen_NK.max().item<int64_t>() < E, "routing replay: expert id ",
        chosen_NK.numel() == 0 ? 0 : chosen_NK.max().item<int64_t>(), " outside the router's ", E, " experts");
  Routing r = route(logits_NE, correction_bias_E, o);
  const auto chosen = chosen_NK.to(r.expert_idx_NK.device(), torch::kInt64);
  const auto free_N1 = (chosen < 0).any(-1, /*keepdim=*/true);
  r.expert_idx_NK = torch::where(free_N1, r.expert_idx_NK, chosen);
  r.weight_NK = expert_weights(r.scores_NE, r.expert_idx_NK, o);
  return r;
}

RouterImpl::RouterImpl(const ModelConfig& c) : options(RoutingOptions::from_config(c)) {
  weight = register_parameter("weight", torch::empty({c.n_routed_experts, c.hidden_size}));
  e_score_correction_bias = register_buffer("e_score_correction_bias", torch::zeros({c.n_routed_experts}));
}

Routing RouterImpl::forward(const torch::Tensor& x_ND) const {
  const auto wide = accumulate_dtype(x_ND.scalar_type());
  const auto dtype = route_in_fp64 ? torch::kFloat64 : wide;
  const auto logits_NE = torch::nn::functional::linear(x_ND.to(dtype), weight.to(dtype));
  const auto bias_E = e_score_correction_bias.to(dtype);
  auto routing = chosen_experts_NK.defined() ? route_to_chosen(logits_NE, bias_E, chosen_experts_NK, options)
                                             : route(logits_NE, bias_E, options);
  if (dtype != wide) {
    routing.weight_NK = routing.weight_NK.to(wide);
    routing.scores_NE = routing.scores_NE.to(wide);
  }
  return routing;
}

}  // namespace k2f::model
