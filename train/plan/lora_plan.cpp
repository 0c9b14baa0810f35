#include "train/plan/lora_plan.h"

#include "base/error.h"

namespace k2f::train::plan {

std::vector<LinearShape> layer_linears(const model::ModelConfig& c, int64_t layer) {
  const std::string prefix = "model.layers." + std::to_string(layer) + ".";
  const int64_t D = c.hidden_size, H = c.num_attention_heads;
  std::vector<LinearShape> out;
  const std::string attn = prefix + "self_attn.";
  if (c.q_lora_rank) {
    out.push_back({attn + "q_a_proj", *c.q_lora_rank, D});
    out.push_back({attn + "q_b_proj", H * c.q_head_dim(), *c.q_lora_rank});
  } else {
    out.push_back({attn + "q_proj", H * c.q_head_dim(), D});
  }
  out.push_back({attn + "kv_a_proj_with_mqa", c.kv_lora_rank + c.qk_rope_head_dim, D});
  out.push_back({attn + "kv_b_proj", H * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank});
  out.push_back({attn + "o_proj", D, H * c.v_head_dim});
  const auto mlp = [&](const std::string& path, int64_t width) {
    out.push_back({path + "gate_proj", width, D});
    out.push_back({path + "up_proj", width, D});
    out.push_back({path + "down_proj", D, width});
  };
  if (!c.is_moe_layer(layer)) {
    mlp(prefix + "mlp.", c.intermediate_size);
    return out;
  }
  if (c.n_shared_experts > 0) mlp(prefix + "mlp.shared_experts.", c.n_shared_experts * c.moe_intermediate_size);
  for (int64_t e = 0; e < c.n_routed_experts; ++e) mlp(prefix + "mlp.experts." + std::to_string(e) + ".", c.moe_intermediate_size);
  return out;
}

void LoraPlan::select(const model::ModelConfig& c) {
  const quant::QatSelector selector(modules);
  layer_widths.assign(static_cast<size_t>(c.num_hidden_layers), {0, 0});
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    auto& [replicated, experts] = layer_widths[static_cast<size_t>(layer)];
    for (const auto& linear : layer_linears(c, layer)) {
      if (!selector.selects(linear.path)) continue;
      (linear.path.find(".mlp.experts.") != std::string::npos ? experts : replicated) += linear.in + linear.out;
    }
  }
  head_width = selector.selects("lm_head") ? c.vocab_size + c.hidden_size : 0;
}

AdapterParams adapter_params(const model::ModelConfig& c, const StageLayout& stage, int64_t ep, const LoraPlan& lora) {
  check(static_cast<int64_t>(lora.layer_widths.size()) == c.num_hidden_layers, "LoraPlan::select was not called");
  AdapterParams p;
  int64_t expert_width = 0;
  for (int64_t layer : stage.layers) {
    p.replicated += lora.rank * lora.layer_widths[static_cast<size_t>(layer)].first;
    expert_width += lora.layer_widths[static_cast<size_t>(layer)].second;
  }
  if (stage.has_head) p.replicated += lora.rank * lora.head_width;
  p.experts = lora.rank * expert_width / ep;
  return p;
}

double frozen_expert_bytes_per_param(const LoraPlan& lora, double dtype_bytes) {
  return lora.int4_experts ? 0.5 + 2.0 / static_cast<double>(lora.group_size) : dtype_bytes;
}

}  // namespace k2f::train::plan
