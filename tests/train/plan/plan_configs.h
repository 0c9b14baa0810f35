// Model configs the planner tests share: the blocks of K2 in small sizes, each varying one thing
// (leading dense layer, several shared experts and a dense layer in the middle, other MLA dims
// with a plain q_proj).
#pragma once

#include <vector>

#include "model/tiny_config.h"

namespace k2f::testing {

inline std::vector<model::ModelConfig> planner_configs() {
  auto dense_first = tiny_config();  // layer 0 dense, layer 1 MoE, q bottleneck
  dense_first.num_hidden_layers = 3;

  auto shared = tiny_config();  // two shared experts, MoE on even layers only, 16 experts top-4
  shared.num_hidden_layers = 4;
  shared.n_shared_experts = 2;
  shared.first_k_dense_replace = 0;
  shared.moe_layer_freq = 2;
  shared.n_routed_experts = 16;
  shared.num_experts_per_tok = 4;
  shared.n_group = 4;
  shared.topk_group = 2;

  auto mla = tiny_config();  // plain q_proj, wider latent and rope dims, 4 heads
  mla.q_lora_rank.reset();
  mla.num_attention_heads = 4;
  mla.num_key_value_heads = 4;
  mla.kv_lora_rank = 24;
  mla.qk_nope_head_dim = 12;
  mla.qk_rope_head_dim = 8;
  mla.v_head_dim = 6;
  return {dense_first, shared, mla};
}

}  // namespace k2f::testing
