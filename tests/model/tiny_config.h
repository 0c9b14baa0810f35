// Small Kimi-K2-architecture configs for unit tests: every block of the real model, tiny sizes.
#pragma once

#include "model/config.h"

namespace k2f::testing {

inline model::ModelConfig tiny_config() {
  model::ModelConfig c;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.moe_intermediate_size = 16;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 2;
  c.n_routed_experts = 8;
  c.num_experts_per_tok = 2;
  c.n_shared_experts = 1;
  c.first_k_dense_replace = 1;
  c.q_lora_rank = 24;
  c.kv_lora_rank = 16;
  c.qk_nope_head_dim = 8;
  c.qk_rope_head_dim = 4;
  c.v_head_dim = 8;
  c.rope_theta = 50000;
  c.rope_scaling = model::RopeScaling{"yarn", 8.0, 64, 32.0, 1.0, 1.0, 1.0};
  c.n_group = 2;
  c.topk_group = 1;
  c.routed_scaling_factor = 2.827;
  c.initializer_range = 0.2;
  return c;
}

}  // namespace k2f::testing
