// Training losses: next-token cross-entropy summed over unmasked targets (the trainer divides by
// the global token count, so micro-batching never changes the loss), and DeepSeek-V3's optional
// sequence-wise expert-balance loss.
// Legend: B batch, T tokens, V vocab, E experts, K experts per token.
#pragma once

#include <torch/types.h>

#include "model/router.h"

namespace k2f::train {

// sum over (b, t) with mask_BT[b,t] != 0 of -log softmax(logits_BTV[b,t])[targets_BT[b,t]] (fp32/fp64).
torch::Tensor masked_nll_sum(const torch::Tensor& logits_BTV, const torch::Tensor& targets_BT, const torch::Tensor& mask_BT);

// For each sequence: f_e = E/(K*T) * (tokens choosing e), P_e = mean_t s_te / sum_j s_tj;
// returns sum over sequences of sum_e f_e * P_e (the caller scales by alpha / sequences).
torch::Tensor sequence_balance_loss_sum(const model::Routing& routing, int64_t batch, int64_t tokens);

}  // namespace k2f::train
