// Multi-head Latent Attention (MLA) of Kimi-K2 / DeepSeek-V3 in the HF parameterisation:
// queries through a low-rank bottleneck (or a plain q_proj when q_lora_rank is null), keys and
// values from a compressed latent plus ONE rope key shared by all heads. Scores are taken in the
// compute dtype and softmaxed in fp32. The forward can record each head's largest logit (QK-Clip).
// Legend: B batch, T tokens, D hidden, H heads, N nope dim, R rope dim, V value dim.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "model/config.h"
#include "model/layers.h"
#include "model/rope.h"

namespace k2f::model {

// What every layer of one forward pass shares: rotary tables and the attention mask.
struct SequenceContext {
  RopeTables rope;
  torch::Tensor allowed_BTT;  // bool, true where query t may attend to key s (causal, per segment)
};

// Causal mask, further restricted to equal segment ids when `segment_ids_BT` is defined.
torch::Tensor causal_mask(int64_t batch, int64_t tokens, const torch::Tensor& segment_ids_BT, torch::Device device);

class MultiHeadLatentAttentionImpl : public torch::nn::Module {
 public:
  explicit MultiHeadLatentAttentionImpl(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& x_BTD, const SequenceContext& context);

  // When on, forwards keep the running per-head maximum pre-softmax logit (scale included) in
  // `max_logits_H` (fp32 [H]); reset it by assigning an undefined tensor.
  bool record_max_logits = false;
  torch::Tensor max_logits_H;

  Linear q_proj{nullptr};  // only when q_lora_rank is null
  Linear q_a_proj{nullptr};
  RMSNorm q_a_layernorm{nullptr};
  Linear q_b_proj{nullptr};
  Linear kv_a_proj_with_mqa{nullptr};
  RMSNorm kv_a_layernorm{nullptr};
  Linear kv_b_proj{nullptr};
  Linear o_proj{nullptr};

 private:
  torch::Tensor project_queries(const torch::Tensor& x_BTD) const;
  int64_t num_heads_, nope_dim_, rope_dim_, value_dim_, kv_lora_rank_;
  double softmax_scale_;
};
TORCH_MODULE(MultiHeadLatentAttention);

}  // namespace k2f::model
