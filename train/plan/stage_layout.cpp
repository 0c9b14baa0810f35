// Counts come from model/param_count.h (layer_parameters), so the planner and `inspect` can never
// disagree; this file only decides where each count lives.
#include "train/plan/stage_layout.h"

#include "model/param_count.h"
#include "parallel/pipeline_schedule.h"

namespace k2f::train::plan {

std::vector<StageLayout> stage_layouts(const model::ModelConfig& c, const parallel::ParallelLayout& layout, bool muon) {
  std::vector<StageLayout> stages(static_cast<size_t>(layout.pp));
  for (int64_t s = 0; s < layout.pp; ++s) {
    stages[s].stage = s;
    stages[s].layers = parallel::stage_layers(layout, c.num_hidden_layers, s);
  }
  const int64_t D = c.hidden_size, V = c.vocab_size;
  const int64_t latent_norms = c.q_lora_rank.value_or(0) + c.kv_lora_rank;
  for (auto& stage : stages) {
    stage.has_embedding = stage.stage == 0;
    stage.has_head = stage.stage == layout.pp - 1;
    const int64_t edges = (stage.has_embedding ? V * D : 0) + (stage.has_head ? V * D + D : 0);
    int64_t adamw = edges;  // embedding, lm_head and every norm
    stage.replicated_params = edges;
    for (int64_t l : stage.layers) {
      const auto p = model::layer_parameters(c, l);
      const int64_t router_bias = c.is_moe_layer(l) ? c.n_routed_experts : 0;
      stage.replicated_params += p.attention + p.norms + p.dense_mlp + p.shared_experts + p.router - router_bias;
      stage.expert_params += p.routed_experts / layout.ep;
      stage.buffer_params += router_bias;
      adamw += p.norms + latent_norms;
    }
    stage.adamw_params = muon ? adamw : stage.trained_params();
    stage.muon_params = stage.trained_params() - stage.adamw_params;
  }
  return stages;
}

}  // namespace k2f::train::plan
