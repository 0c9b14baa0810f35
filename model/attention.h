// Multi-head Latent Attention (MLA) of Kimi-K2 / DeepSeek-V3 in the HF parameterisation:
// queries through a low-rank bottleneck (or a plain q_proj when q_lora_rank is null), keys and
// values from a compressed latent plus ONE rope key shared by all heads. Scores are taken in the
// compute dtype and softmaxed in fp32. The forward can record each head's largest logit (QK-Clip).
// Cached forwards (generation) read keys from a KvCache of latents either by expanding them
// through kv_b_proj (the training form) or with kv_b_proj absorbed into the query and the output
// (DeepSeek-V2/V3): scores q_nope W_UK . c + q_pe . k_pe, output (probs @ c) W_UV^T.
// Legend: B batch, T tokens (queries), S keys, D hidden, H heads, N nope dim, R rope dim, V value dim,
// L kv_lora_rank, M = B*T or T*H rows of a batched product.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "model/config.h"
#include "model/kv_cache.h"
#include "model/layers.h"
#include "model/rope.h"

namespace k2f::model {

// What every layer of one forward pass shares: rotary tables and the attention mask.
struct SequenceContext {
  RopeTables rope;
  torch::Tensor allowed_BTT;  // bool [B,T,S], true where query t may attend to key s (S = T without a cache)
};

// How a cached forward uses the latents: absorbed into the projections (the fast decode form), or
// expanded through kv_b_proj into per-head keys and values every step (the reference form).
enum class LatentAttention { kAbsorbed, kExpanded };

// Causal mask, further restricted to equal segment ids when `segment_ids_BT` is defined.
torch::Tensor causal_mask(int64_t batch, int64_t tokens, const torch::Tensor& segment_ids_BT, torch::Device device);

class MultiHeadLatentAttentionImpl : public torch::nn::Module {
 public:
  explicit MultiHeadLatentAttentionImpl(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& x_BTD, const SequenceContext& context);
  // The next T tokens against `cache` (which receives their latents under `layer`); the context
  // holds their rope tables and the [B,T,length+T] mask from the cache. The caller advances it.
  torch::Tensor forward_cached(const torch::Tensor& x_BTD, const SequenceContext& context, KvCache& cache,
                               int64_t layer, LatentAttention form);

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
  struct Queries {
    torch::Tensor nope_BTHN;
    torch::Tensor pe_BTHR;  // after RoPE
  };
  Queries project_queries(const torch::Tensor& x_BTD, const RopeTables& rope) const;
  // kv_a_layernorm(c) [B,T,L] and the shared rope key after RoPE [B,T,R].
  std::pair<torch::Tensor, torch::Tensor> compress_kv(const torch::Tensor& x_BTD, const RopeTables& rope) const;
  // Heads' outputs [B,T,H*V] before o_proj, keys and values expanded per head through kv_b_proj.
  torch::Tensor attend_expanded(const Queries& q, const torch::Tensor& latent_BSL, const torch::Tensor& rope_key_BSR,
                                const torch::Tensor& allowed_BTS);
  // The same with kv_b_proj absorbed: scores and the weighted sum taken over latents.
  torch::Tensor attend_absorbed(const Queries& q, const torch::Tensor& latent_BSL, const torch::Tensor& rope_key_BSR,
                                const torch::Tensor& allowed_BTS) const;
  int64_t num_heads_, nope_dim_, rope_dim_, value_dim_, kv_lora_rank_;
  double softmax_scale_;
};
TORCH_MODULE(MultiHeadLatentAttention);

}  // namespace k2f::model
