#include "model/attention.h"

#include <limits>

#include "base/error.h"
#include "base/matmul.h"

namespace k2f::model {
namespace {
// q_a_layernorm and kv_a_layernorm use 1e-6 whatever rms_norm_eps says (HF DeepseekV3Attention).
constexpr double kLatentNormEps = 1e-6;

// The matrix [out, in] a Linear applies, in `dtype`: its weight, or, when a kernel computes it
// (fake-quantised QAT weights, packed INT4), what that kernel does to the identity.
torch::Tensor linear_matrix(const Linear& linear, torch::ScalarType dtype, torch::Device device) {
  if (!linear->kernel) return linear->weight.to(dtype);
  const auto identity = torch::eye(linear->in_features, torch::TensorOptions().dtype(dtype).device(device));
  return linear->forward(identity).transpose(0, 1).contiguous();
}
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

MultiHeadLatentAttentionImpl::Queries MultiHeadLatentAttentionImpl::project_queries(const torch::Tensor& x_BTD,
                                                                                     const RopeTables& rope) const {
  const int64_t B = x_BTD.size(0), T = x_BTD.size(1);
  const auto q_flat = q_proj ? q_proj->forward(x_BTD) : q_b_proj->forward(q_a_layernorm->forward(q_a_proj->forward(x_BTD)));
  const auto q_BTHQ = q_flat.view({B, T, num_heads_, nope_dim_ + rope_dim_});
  return {q_BTHQ.narrow(-1, 0, nope_dim_), apply_rope(q_BTHQ.narrow(-1, nope_dim_, rope_dim_), rope)};
}

std::pair<torch::Tensor, torch::Tensor> MultiHeadLatentAttentionImpl::compress_kv(const torch::Tensor& x_BTD,
                                                                                  const RopeTables& rope) const {
  const auto compressed_BTC = kv_a_proj_with_mqa->forward(x_BTD);
  const auto latent_BTL = kv_a_layernorm->forward(compressed_BTC.narrow(-1, 0, kv_lora_rank_));
  const auto rope_key_BTR = apply_rope(compressed_BTC.narrow(-1, kv_lora_rank_, rope_dim_).unsqueeze(2), rope).squeeze(2);
  return {latent_BTL, rope_key_BTR};
}

torch::Tensor MultiHeadLatentAttentionImpl::attend_expanded(const Queries& q, const torch::Tensor& latent_BSL,
                                                            const torch::Tensor& rope_key_BSR,
                                                            const torch::Tensor& allowed_BTS) {
  const int64_t B = q.nope_BTHN.size(0), T = q.nope_BTHN.size(1), S = latent_BSL.size(1), H = num_heads_;
  const auto dtype = q.nope_BTHN.scalar_type();
  const auto kv_BSHX = kv_b_proj->forward(latent_BSL).view({B, S, H, nope_dim_ + value_dim_});
  const auto k_nope_BSHN = kv_BSHX.narrow(-1, 0, nope_dim_);
  const auto v_BSHV = kv_BSHX.narrow(-1, nope_dim_, value_dim_);

  const auto q_BHTQ = torch::cat({q.nope_BTHN, q.pe_BTHR}, -1).transpose(1, 2);
  const auto k_BHSQ = torch::cat({k_nope_BSHN, rope_key_BSR.unsqueeze(2).expand({B, S, H, rope_dim_})}, -1).transpose(1, 2);
  auto scores_BHTS = (k2f::matmul(q_BHTQ, k_BHSQ.transpose(-1, -2)) * softmax_scale_).to(accumulate_dtype(dtype));
  scores_BHTS = scores_BHTS.masked_fill(allowed_BTS.logical_not().unsqueeze(1), -std::numeric_limits<float>::infinity());
  if (record_max_logits) {  // running maximum over the forwards of one optimizer step
    const auto batch_max_H = scores_BHTS.detach().amax({0, 2, 3}).to(torch::kFloat32);
    max_logits_H = max_logits_H.defined() ? torch::maximum(max_logits_H, batch_max_H) : batch_max_H;
  }
  const auto probs_BHTS = torch::softmax(scores_BHTS, -1).to(dtype);
  const auto out_BHTV = k2f::matmul(probs_BHTS, v_BSHV.transpose(1, 2));
  return out_BHTV.transpose(1, 2).reshape({B, T, H * value_dim_});
}

torch::Tensor MultiHeadLatentAttentionImpl::attend_absorbed(const Queries& q, const torch::Tensor& latent_BSL,
                                                            const torch::Tensor& rope_key_BSR,
                                                            const torch::Tensor& allowed_BTS) const {
  const int64_t B = q.nope_BTHN.size(0), T = q.nope_BTHN.size(1), S = latent_BSL.size(1), H = num_heads_;
  const auto dtype = q.nope_BTHN.scalar_type();
  // kv_b_proj's matrix [H*(N+V), L] per head: W_UK [H,N,L] makes k_nope, W_UV [H,V,L] makes v.
  const auto w_HXL = linear_matrix(kv_b_proj, dtype, q.nope_BTHN.device()).view({H, nope_dim_ + value_dim_, kv_lora_rank_});
  const auto w_uk_HNL = w_HXL.narrow(1, 0, nope_dim_);
  const auto w_uv_HVL = w_HXL.narrow(1, nope_dim_, value_dim_);

  // q_nope . (W_UK c) = (q_nope W_UK) . c: queries moved into latent space, one product per head.
  const auto q_nope_HMN = q.nope_BTHN.reshape({B * T, H, nope_dim_}).transpose(0, 1);
  const auto q_latent_BML = k2f::bmm(q_nope_HMN, w_uk_HNL).view({H, B, T, kv_lora_rank_}).permute({1, 2, 0, 3})
                                .reshape({B, T * H, kv_lora_rank_});
  const auto q_pe_BMR = q.pe_BTHR.reshape({B, T * H, rope_dim_});
  const auto scores_BMS = k2f::bmm(q_latent_BML, latent_BSL.transpose(1, 2)) + k2f::bmm(q_pe_BMR, rope_key_BSR.transpose(1, 2));
  auto scores_BTHS = (scores_BMS * softmax_scale_).to(accumulate_dtype(dtype)).view({B, T, H, S});
  scores_BTHS = scores_BTHS.masked_fill(allowed_BTS.logical_not().unsqueeze(2), -std::numeric_limits<float>::infinity());
  const auto probs_BMS = torch::softmax(scores_BTHS, -1).to(dtype).view({B, T * H, S});

  // probs @ (c W_UV^T) = (probs @ c) W_UV^T: the weighted sum stays in latent space until the end.
  const auto out_latent_HML = k2f::bmm(probs_BMS, latent_BSL).view({B, T, H, kv_lora_rank_}).permute({2, 0, 1, 3})
                                  .reshape({H, B * T, kv_lora_rank_});
  const auto out_HMV = k2f::bmm(out_latent_HML, w_uv_HVL.transpose(1, 2));
  return out_HMV.view({H, B, T, value_dim_}).permute({1, 2, 0, 3}).reshape({B, T, H * value_dim_});
}

torch::Tensor MultiHeadLatentAttentionImpl::forward(const torch::Tensor& x_BTD, const SequenceContext& context) {
  const auto q = project_queries(x_BTD, context.rope);
  const auto [latent_BTL, rope_key_BTR] = compress_kv(x_BTD, context.rope);
  return o_proj->forward(attend_expanded(q, latent_BTL, rope_key_BTR, context.allowed_BTT));
}

torch::Tensor MultiHeadLatentAttentionImpl::forward_cached(const torch::Tensor& x_BTD, const SequenceContext& context,
                                                           KvCache& cache, int64_t layer, LatentAttention form) {
  check(x_BTD.scalar_type() == cache.dtype(), "KV cache holds ", cache.dtype(), " but the layer computes in ",
        x_BTD.scalar_type());
  const auto q = project_queries(x_BTD, context.rope);
  const auto [latent_BTL, rope_key_BTR] = compress_kv(x_BTD, context.rope);
  const auto [latent_BSL, rope_key_BSR] = cache.append(layer, latent_BTL, rope_key_BTR);
  const auto heads_BTX = form == LatentAttention::kAbsorbed
                             ? attend_absorbed(q, latent_BSL, rope_key_BSR, context.allowed_BTT)
                             : attend_expanded(q, latent_BSL, rope_key_BSR, context.allowed_BTT);
  return o_proj->forward(heads_BTX);
}

}  // namespace k2f::model
