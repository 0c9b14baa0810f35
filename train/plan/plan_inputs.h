// Everything the planner reads: the model, the resolved layout, the batch, precision, optimizer,
// cluster, and the RL rollout batch whose KV cache it sizes. Built from TrainOptions so the plan
// describes exactly what `k2forge train` would run.
#pragma once

#include <optional>

#include "model/config.h"
#include "parallel/mesh.h"
#include "train/plan/cluster_spec.h"
#include "train/plan/lora_plan.h"
#include "train/train_options.h"

namespace k2f::train::plan {

struct PlanInputs {
  model::ModelConfig model;
  parallel::ParallelLayout layout;  // dp resolved for num_gpus
  int64_t num_gpus = 1;
  int64_t seq_len = 0;
  int64_t micro_batch_size = 1;
  int64_t global_batch_size = 1;
  bool recompute = false;
  bool bf16 = true;  // bf16 weights and activations, fp32 gradients and masters; else all fp32
  bool muon = true;  // optim.name muonclip (Muon for hidden matrices), else AdamW everywhere
  std::optional<ClusterSpec> cluster;
  int64_t rollout_sequences = 0;  // RL: sequences decoded at once per GPU (0: no rollout)
  int64_t rollout_tokens = 0;     // RL: prompt + response tokens each
  // lora.rank > 0: the frozen base plus adapters (lora_plan.h) instead of full training.
  std::optional<LoraPlan> lora;

  int64_t micro_batches_per_step() const { return global_batch_size / (layout.dp * micro_batch_size); }
  int64_t tokens_per_micro_batch() const { return micro_batch_size * seq_len; }
  int64_t activation_bytes() const { return bf16 ? 2 : 4; }

  // The layout for the cluster's GPUs (or pp x dp without a cluster), validated with the recipe's
  // dotted names; the batch must split into whole micro-batches per dp rank.
  // With LoRA, whether the base's routed experts are INT4 is read from train.init_from's
  // config.json; `lora_base` ("int4" or "bf16") decides where that directory is absent ("" or
  // "auto": INT4, K2 Thinking's format, and the table says it was assumed).
  static PlanInputs from_options(const TrainOptions& options, const std::optional<ClusterSpec>& cluster,
                                 const std::string& lora_base = "");
};

}  // namespace k2f::train::plan
