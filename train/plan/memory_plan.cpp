#include "train/plan/memory_plan.h"

#include <algorithm>

#include "train/plan/activation_memory.h"
#include "train/plan/lora_plan.h"
#include "train/plan/pipeline_inflight.h"

namespace k2f::train::plan {

double stage_activation_bytes(const PlanInputs& in, const StageLayout& stage, bool with_head) {
  const ActivationShape shape{in.seq_len, in.activation_bytes()};
  double per_token = sequence_context_bytes(in.model, shape);
  for (int64_t l : stage.layers) {
    per_token += in.recompute ? recomputed_layer_activation_bytes(in.model, shape)
                              : layer_activation_bytes(in.model, l, shape);
  }
  if (stage.has_head && with_head) per_token += head_activation_bytes(in.model, shape);
  const double causal_mask = static_cast<double>(in.seq_len * in.seq_len);  // [T,T] bool, shared by the rows
  return per_token * static_cast<double>(in.tokens_per_micro_batch()) + causal_mask;
}

double kv_cache_bytes_per_token_per_layer(const PlanInputs& in) {
  return static_cast<double>((in.model.kv_lora_rank + in.model.qk_rope_head_dim) * in.activation_bytes());
}

std::vector<StageMemory> memory_plan(const PlanInputs& in) {
  const ActivationShape shape{in.seq_len, in.activation_bytes()};
  const double replicated_shards = in.layout.zero1 ? static_cast<double>(in.layout.dp) : 1.0;
  const double expert_shards = in.layout.zero1 ? static_cast<double>(in.layout.dp / in.layout.ep) : 1.0;
  const double tokens = static_cast<double>(in.tokens_per_micro_batch());
  std::vector<StageMemory> plan;
  for (const auto& stage : stage_layouts(in.model, in.layout, in.muon)) {
    StageMemory m;
    m.layout = stage;
    const double trained = static_cast<double>(stage.trained_params());
    // Optimizer-side bytes of one parameter, sharded by the group that holds the same values.
    const double expert_share = static_cast<double>(stage.expert_params) / expert_shards;
    const double replicated_share = static_cast<double>(stage.replicated_params) / replicated_shards;
    const double sharded = expert_share + replicated_share;
    const double a = static_cast<double>(in.activation_bytes());
    if (in.lora) {
      const double adapter = static_cast<double>(adapter_params(in.model, stage, in.layout.ep, *in.lora).total());
      m.weights = static_cast<double>(stage.expert_params) * frozen_expert_bytes_per_param(*in.lora, a) +
                  static_cast<double>(stage.replicated_params + stage.buffer_params) * a;
      m.adapters = adapter * 4;
      m.gradients = adapter * 4;
      m.muon_momentum = in.lora->muon ? adapter * 4 : 0;
      m.adamw_moments = in.lora->muon ? 0 : adapter * 8;
    } else {
      m.weights = static_cast<double>(stage.stored_params()) * a;
      m.gradients = trained * 4;
      m.master_weights = in.bf16 ? sharded * 4 : 0;
      // Routed experts are all Muon's (under muonclip); the replicated rest splits by rule.
      const double expert_muon = in.muon ? expert_share : 0;
      const double replicated_muon =
          (static_cast<double>(stage.muon_params) - (in.muon ? static_cast<double>(stage.expert_params) : 0)) /
          replicated_shards;
      m.muon_momentum = (expert_muon + replicated_muon) * 4;
      m.adamw_moments = (sharded - expert_muon - replicated_muon) * 8;
    }
    m.activations_per_micro_batch = stage_activation_bytes(in, stage, /*with_head=*/false);
    m.inflight_micro_batches = inflight_micro_batches(in.layout, stage.stage, in.micro_batches_per_step());
    m.activations = m.activations_per_micro_batch * m.inflight_micro_batches;
    if (in.recompute && !stage.layers.empty()) {
      double largest = 0;
      for (int64_t l : stage.layers) largest = std::max(largest, layer_activation_bytes(in.model, l, shape));
      m.working += largest * tokens;
    }
    if (stage.has_head) m.working += (head_activation_bytes(in.model, shape) + logits_bytes(in.model, shape)) * tokens;
    m.kv_cache = kv_cache_bytes_per_token_per_layer(in) * static_cast<double>(stage.layers.size()) *
                 static_cast<double>(in.rollout_sequences * in.rollout_tokens);
    plan.push_back(m);
  }
  return plan;
}

Json StageMemory::to_json() const {
  return Json{{"stage", layout.stage},
              {"layers", layout.layers},
              {"params_per_gpu", layout.stored_params()},
              {"expert_params_per_gpu", layout.expert_params},
              {"weights_bytes", weights},
              {"lora_adapters_bytes", adapters},
              {"gradients_bytes", gradients},
              {"master_weights_bytes", master_weights},
              {"muon_momentum_bytes", muon_momentum},
              {"adamw_moments_bytes", adamw_moments},
              {"state_bytes", state()},
              {"activations_per_micro_batch_bytes", activations_per_micro_batch},
              {"inflight_micro_batches", inflight_micro_batches},
              {"activations_bytes", activations},
              {"working_bytes", working},
              {"total_bytes", total()},
              {"rollout_kv_cache_bytes", kv_cache}};
}

}  // namespace k2f::train::plan
