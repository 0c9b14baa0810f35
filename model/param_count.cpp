#include "model/param_count.h"

namespace k2f::model {

int64_t attention_parameters(const ModelConfig& c) {
  const int64_t D = c.hidden_size, H = c.num_attention_heads;
  const int64_t q = c.q_lora_rank ? D * *c.q_lora_rank + *c.q_lora_rank + *c.q_lora_rank * H * c.q_head_dim()
                                  : D * H * c.q_head_dim();
  const int64_t kv = D * (c.kv_lora_rank + c.qk_rope_head_dim) + c.kv_lora_rank +
                     c.kv_lora_rank * H * (c.qk_nope_head_dim + c.v_head_dim);
  const int64_t out = H * c.v_head_dim * D;
  return q + kv + out;
}

int64_t ParameterCounts::total() const {
  return embedding + attention + norms + dense_mlp + routed_experts + shared_experts + router + head;
}

int64_t ParameterCounts::active() const { return total() - routed_experts + routed_experts_active; }

Json ParameterCounts::to_json() const {
  return Json{{"total_params", total()},
              {"active_params", active()},
              {"breakdown",
               {{"embedding", embedding},
                {"attention", attention},
                {"norms", norms},
                {"dense_mlp", dense_mlp},
                {"routed_experts", routed_experts},
                {"routed_experts_active", routed_experts_active},
                {"shared_experts", shared_experts},
                {"router", router},
                {"head", head}}}};
}

ForwardFlops layer_forward_flops(const ModelConfig& c, int64_t layer, double attended_keys) {
  const double D = static_cast<double>(c.hidden_size), H = static_cast<double>(c.num_attention_heads);
  const double latent_norms = static_cast<double>(c.q_lora_rank.value_or(0) + c.kv_lora_rank);
  double matmul = static_cast<double>(attention_parameters(c)) - latent_norms;
  if (c.is_moe_layer(layer)) {
    const double expert = 3.0 * D * static_cast<double>(c.moe_intermediate_size);
    matmul += static_cast<double>(c.n_routed_experts) * D +
              static_cast<double>(c.num_experts_per_tok + c.n_shared_experts) * expert;
  } else {
    matmul += 3.0 * D * static_cast<double>(c.intermediate_size);
  }
  ForwardFlops f;
  f.weights = 2.0 * matmul;
  f.attention = 2.0 * H * static_cast<double>(c.q_head_dim() + c.v_head_dim) * attended_keys;
  return f;
}

double head_forward_flops(const ModelConfig& c) {
  return 2.0 * static_cast<double>(c.vocab_size) * static_cast<double>(c.hidden_size);
}

double forward_flops_per_token(const ModelConfig& c, int64_t seq_len) {
  const double attended_keys = static_cast<double>(seq_len + 1) / 2.0;
  double flops = head_forward_flops(c);
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) flops += layer_forward_flops(c, layer, attended_keys).total();
  return flops;
}

ParameterCounts layer_parameters(const ModelConfig& c, int64_t layer) {
  const int64_t D = c.hidden_size;
  const int64_t expert = 3 * D * c.moe_intermediate_size;
  ParameterCounts n;
  n.attention = attention_parameters(c);
  n.norms = 2 * D;
  if (c.is_moe_layer(layer)) {
    n.router = c.n_routed_experts * D + c.n_routed_experts;
    n.routed_experts = c.n_routed_experts * expert;
    n.routed_experts_active = c.num_experts_per_tok * expert;
    n.shared_experts = c.n_shared_experts * expert;
  } else {
    n.dense_mlp = 3 * D * c.intermediate_size;
  }
  return n;
}

ParameterCounts count_parameters(const ModelConfig& c) {
  ParameterCounts n;
  n.embedding = c.vocab_size * c.hidden_size;
  n.head = c.vocab_size * c.hidden_size;
  n.norms = c.hidden_size;  // model.norm
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    const auto l = layer_parameters(c, layer);
    n.attention += l.attention;
    n.norms += l.norms;
    n.dense_mlp += l.dense_mlp;
    n.routed_experts += l.routed_experts;
    n.routed_experts_active += l.routed_experts_active;
    n.shared_experts += l.shared_experts;
    n.router += l.router;
  }
  return n;
}

}  // namespace k2f::model
