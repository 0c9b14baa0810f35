// The architecture of a Kimi-K2 / DeepSeek-V3 model, field for field as in the HF config.json
// (model_type "kimi_k2", DeepseekV3ForCausalLM). Fields that shape tensors are required; the
// rest default to DeepseekV3Config's defaults. Unknown fields are kept verbatim and written back.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/json_io.h"

namespace k2f::model {

struct RopeScaling {
  std::string type = "yarn";
  double factor = 1.0;
  int64_t original_max_position_embeddings = 4096;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;
};

struct ModelConfig {
  std::string model_type = "kimi_k2";
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t moe_intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t n_routed_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t n_shared_experts = 1;
  int64_t first_k_dense_replace = 3;
  int64_t moe_layer_freq = 1;
  std::optional<int64_t> q_lora_rank;  // null: a plain q_proj
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  double rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;
  int64_t max_position_embeddings = 4096;
  std::string scoring_func = "sigmoid";  // or "softmax"
  std::string topk_method = "noaux_tc";  // or "greedy", "group_limited_greedy"
  int64_t n_group = 1;
  int64_t topk_group = 1;
  bool norm_topk_prob = true;
  double routed_scaling_factor = 1.0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  int64_t bos_token_id = 0;
  int64_t eos_token_id = 1;
  double aux_loss_alpha = 0.001;
  bool seq_aux = true;
  int64_t num_nextn_predict_layers = 0;
  double initializer_range = 0.02;
  Json extra_fields = Json::object();  // unknown config.json fields, written back unchanged

  int64_t q_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool is_moe_layer(int64_t layer) const {
    return n_routed_experts > 0 && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
  }
  // Attention logit scale: (dn+dr)^-0.5, times mscale^2 under YaRN (HF DeepseekV3Attention).
  double softmax_scale() const;

  // Throws k2f::Error naming `prefix`.field and the offending values.
  void validate(const std::string& prefix = "model") const;

  // `source` names the file in error messages.
  static ModelConfig from_hf_json(const Json& json, const std::string& source);
  static ModelConfig from_hf_file(const std::string& path);
  Json to_hf_json() const;
};

// The published Kimi-K2 configuration (K2_REFERENCE section 1, K2-Instruct rope scaling).
ModelConfig kimi_k2_config();

}  // namespace k2f::model
