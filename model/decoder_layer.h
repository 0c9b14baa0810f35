// One pre-norm decoder layer: h = x + Attn(input_layernorm(x)); out = h + MLP(post_attention_layernorm(h)),
// where the MLP is dense for the first `first_k_dense_replace` layers and MoE after (HF names "mlp" for both).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "model/attention.h"
#include "model/layers.h"
#include "model/moe.h"

namespace k2f::model {

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const ModelConfig& config, int64_t layer_index, ExpertSlice experts = {});
  torch::Tensor forward(const torch::Tensor& x_BTD, const SequenceContext& context);
  // The same for the next T tokens of a generation, attending through `cache` (see attention.h).
  torch::Tensor forward_cached(const torch::Tensor& x_BTD, const SequenceContext& context, KvCache& cache,
                               LatentAttention form);

  RMSNorm input_layernorm{nullptr};
  MultiHeadLatentAttention self_attn{nullptr};
  RMSNorm post_attention_layernorm{nullptr};
  MLP dense_mlp{nullptr};  // registered as "mlp" on dense layers
  MoE moe{nullptr};        // registered as "mlp" on MoE layers
  int64_t layer_index;

 private:
  // h + MLP(post_attention_layernorm(h)).
  torch::Tensor mlp_residual(const torch::Tensor& h_BTD);
};
TORCH_MODULE(DecoderLayer);

}  // namespace k2f::model
