// Bytes per GPU of one pipeline stage: weights, gradients, optimizer state (ZeRO-1 shards it over
// the ranks holding the same parameters: dp for replicated ones, dp/ep for routed experts),
// activations of the in-flight micro-batches, the transient working set, and the MLA KV cache of
// RL rollouts (reported beside, not added: rollouts and training steps take turns).
// Precision is the cluster scheme: bf16 weights and activations, fp32 gradient accumulation,
// fp32 master weights and fp32 optimizer state (train.dtype fp32: fp32 weights, no masters).
// LoRA (inputs.lora): the base is frozen as the trainer holds it (lora_plan.h) and only the
// adapters have gradients and optimizer state.
#pragma once

#include <vector>

#include "base/json_io.h"
#include "train/plan/plan_inputs.h"
#include "train/plan/stage_layout.h"

namespace k2f::train::plan {

struct StageMemory {
  StageLayout layout;
  double weights = 0;          // bf16 (fp32 under train.dtype fp32); with LoRA the frozen base
  double adapters = 0;         // LoRA: A and B of the adapted linears, fp32
  double gradients = 0;        // fp32
  double master_weights = 0;   // fp32, ZeRO-1 shard (bf16 only)
  double muon_momentum = 0;    // fp32, ZeRO-1 shard
  double adamw_moments = 0;    // fp32 x 2, ZeRO-1 shard
  double activations_per_micro_batch = 0;  // kept for backward by the stage's layers
  double inflight_micro_batches = 0;
  double activations = 0;      // per micro-batch x in flight
  double working = 0;          // one layer rebuilt under recompute; on the last stage the loss of one
                               // micro-batch (its backward follows its forward at once) and the logits
  double kv_cache = 0;         // RL rollouts on this stage's layers

  double state() const { return weights + adapters + gradients + master_weights + muon_momentum + adamw_moments; }
  double total() const { return state() + activations + working; }
  Json to_json() const;
};

std::vector<StageMemory> memory_plan(const PlanInputs& inputs);

// Bytes one micro-batch keeps for its backward on `stage` (its layers, and the loss on the last
// stage unless `with_head` is false).
double stage_activation_bytes(const PlanInputs& inputs, const StageLayout& stage, bool with_head = true);

// MLA latent cache per token per layer: kv_lora_rank + qk_rope_head_dim values in the compute dtype.
double kv_cache_bytes_per_token_per_layer(const PlanInputs& inputs);

}  // namespace k2f::train::plan
