#include "model/attention.h"

namespace k2f::model {
namespace {
// q_a_layernorm and kv_a_layernorm use 1e-6 whatever rms_norm_eps says (HF DeepseekV3Attention).
constexpr double kLatentNormEps = 1e-6;
}  // namespace

torch::Tensor causal_mask(int64_t batch, int64_t tokens, const torch::Tensor& segment_ids_BT, torch::Device device) {
  auto allowed_TT = torch::ones({tokens, tokens}, torch::TensorOptions().dtype(torch::kBool).device(device)).tril();
  auto allowed_BTT = allowed_TT.unsqueeze(0).expand({batch, tokens, tokens});
  if (segment_ids_BT.defined()) {
    allowed_BTT = allowed_BTT & (segment_ids_BT.unsqueeze(2) == segment_ids_BT.unsqueeze(1));
  }
  return allowed_BTT;
}

MultiHeadLatentAttentionImpl::MultiHeadLatentAttentionImpl(const ModelConfig& c)
    : num_heads_(c.num_attention_heads),
      nope_dim_(c.qk_nope_head_dim),
      rope_dim_(c.qk_rope_head_dim),
      value_dim_(c.v_head_dim),
      kv_lora_rank_(c.kv_lora_rank),
      softmax_scale_(c.softmax_scale()) {
  const int64_t q_out = c.num_attention_heads * c.q_head_dim();
  if (c.q_lora_rank) {
    q_a_proj = register_module("q_a_proj", Linear(c.hidden_size, *c.q_lora_rank));
    q_a_layernorm = register_module("q_a_layernorm", RMSNorm(*c.q_lora_rank, kLatentNormEps));
    q_b_proj = register_module("q_b_proj", Linear(*c.q_lora_rank, q_out));
  } else {
    q_proj = register_module("q_proj", Linear(c.hidden_size, q_out));
  }
  kv_a_proj_with_mqa = register_module("kv_a_proj_with_mqa", Linear(c.hidden_size, c.kv_lora_rank + c.qk_rope_head_dim));
  kv_a_layernorm = register_module("kv_a_layernorm", RMSNorm(c.kv_lora_rank, kLatentNormEps));
  kv_b_proj = register_module("kv_b_proj",
                              Linear(c.kv_lora_rank, c.num_attention_heads * (c.qk_nope_head_dim + c.v_head_dim)));
  o_proj = register_module("o_proj", Linear(c.num_attention_heads * c.v_head_dim, c.hidden_size));
}

torch::Tensor MultiHeadLatentAttentionImpl::project_queries(const torch::Tensor& x_BTD) const {
  if (q_proj) return q_proj->forward(x_BTD);
  return q_b_proj->forward(q_a_layernorm->forward(q_a_proj->forward(x_BTD)));
}

torch::Tensor MultiHeadLatentAttentionImpl::forward(const torch::Tensor& x_BTD, const SequenceContext& context) {
  const int64_t B = x_BTD.size(0), T = x_BTD.size(1), H = num_heads_;
  const auto q_BTHQ = project_queries(x_BTD).view({B, T, H, nope_dim_ + rope_dim_});
  const auto q_nope_BTHN = q_BTHQ.narrow(-1, 0, nope_dim_);
  const auto q_pe_BTHR = apply_rope(q_BTHQ.narrow(-1, nope_dim_, rope_dim_), context.rope);

  const auto compressed_BTC = kv_a_proj_with_mqa->forward(x_BTD);
  const auto latent_BTL = compressed_BTC.narrow(-1, 0, kv_lora_rank_);
  const auto k_pe_BT1R = apply_rope(compressed_BTC.narrow(-1, kv_lora_rank_, rope_dim_).unsqueeze(2), context.rope);
  const auto kv_BTHX = kv_b_proj->forward(kv_a_layernorm->forward(latent_BTL)).view({B, T, H, nope_dim_ + value_dim_});
  const auto k_nope_BTHN = kv_BTHX.narrow(-1, 0, nope_dim_);
  const auto v_BTHV = kv_BTHX.narrow(-1, nope_dim_, value_dim_);

  const auto q_BHTQ = torch::cat({q_nope_BTHN, q_pe_BTHR}, -1).transpose(1, 2);
  const auto k_BHTQ = torch::cat({k_nope_BTHN, k_pe_BT1R.expand({B, T, H, rope_dim_})}, -1).transpose(1, 2);
  auto scores_BHTT = (torch::matmul(q_BHTQ, k_BHTQ.transpose(-1, -2)) * softmax_scale_).to(accumulate_dtype(x_BTD.scalar_type()));
  const auto blocked_B1TT = context.allowed_BTT.logical_not().unsqueeze(1);
  scores_BHTT = scores_BHTT.masked_fill(blocked_B1TT, -std::numeric_limits<float>::infinity());
  if (record_max_logits) {  // running maximum over the forwards of one optimizer step
    const auto batch_max_H = scores_BHTT.detach().amax({0, 2, 3}).to(torch::kFloat32);
    max_logits_H = max_logits_H.defined() ? torch::maximum(max_logits_H, batch_max_H) : batch_max_H;
  }
  const auto probs_BHTT = torch::softmax(scores_BHTT, -1).to(x_BTD.scalar_type());
  const auto out_BHTV = torch::matmul(probs_BHTT, v_BTHV.transpose(1, 2));
  return o_proj->forward(out_BHTV.transpose(1, 2).reshape({B, T, H * value_dim_}));
}

}  // namespace k2f::model
