#include "train/losses.h"

namespace k2f::train {

torch::Tensor masked_nll_sum(const torch::Tensor& logits_BTV, const torch::Tensor& targets_BT, const torch::Tensor& mask_BT) {
  const auto logprobs_BTV = torch::log_softmax(logits_BTV, -1);
  const auto target_BT = logprobs_BTV.gather(2, targets_BT.unsqueeze(-1)).squeeze(-1);
  return -(target_BT * mask_BT.to(target_BT.scalar_type())).sum();
}

torch::Tensor sequence_balance_loss_sum(const model::Routing& routing, int64_t batch, int64_t tokens) {
  const int64_t E = routing.scores_NE.size(1), K = routing.expert_idx_NK.size(1);
  const auto scores_BTE = routing.scores_NE.view({batch, tokens, E});
  const auto normalized_BTE = scores_BTE / scores_BTE.sum(-1, true);
  const auto P_BE = normalized_BTE.mean(1);
  const auto chosen_BTE = torch::zeros_like(scores_BTE).scatter(2, routing.expert_idx_NK.view({batch, tokens, K}), 1.0);
  const auto f_BE = chosen_BTE.sum(1) * (static_cast<double>(E) / static_cast<double>(K * tokens));
  return (f_BE.detach() * P_BE).sum();
}

}  // namespace k2f::train
