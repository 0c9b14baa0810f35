#include "model/decoder_layer.h"

namespace k2f::model {

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& c, int64_t index, ExpertSlice experts) : layer_index(index) {
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  self_attn = register_module("self_attn", MultiHeadLatentAttention(c));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  if (c.is_moe_layer(index)) {
    moe = register_module("mlp", MoE(c, experts.first, experts.count));
  } else {
    dense_mlp = register_module("mlp", MLP(c.hidden_size, c.intermediate_size));
  }
}

torch::Tensor DecoderLayerImpl::mlp_residual(const torch::Tensor& h_BTD) {
  const auto normed_BTD = post_attention_layernorm->forward(h_BTD);
  return h_BTD + (moe ? moe->forward(normed_BTD) : dense_mlp->forward(normed_BTD));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x_BTD, const SequenceContext& context) {
  return mlp_residual(x_BTD + self_attn->forward(input_layernorm->forward(x_BTD), context));
}

torch::Tensor DecoderLayerImpl::forward_cached(const torch::Tensor& x_BTD, const SequenceContext& context,
                                               KvCache& cache, LatentAttention form) {
  return mlp_residual(x_BTD + self_attn->forward_cached(input_layernorm->forward(x_BTD), context, cache, layer_index, form));
}

}  // namespace k2f::model
