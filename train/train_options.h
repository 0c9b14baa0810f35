// Everything `k2forge train` reads from a recipe, as typed structs validated before any work
// starts (messages use the recipe's dotted paths and quote the values). Derived quantities, such
// as gradient-accumulation steps, are computed here rather than written in recipes.
#pragma once

#include <string>
#include <vector>

#include "model/config.h"
#include "parallel/mesh.h"
#include "quant/lora.h"
#include "quant/qat.h"
#include "train/optim/optimizer.h"
#include "train/recipe.h"
#include "train/schedule.h"

namespace k2f::train {

struct TrainOptions {
  model::ModelConfig model;
  std::string run_dir;
  uint64_t seed = 1234;
  torch::ScalarType dtype = torch::kBFloat16;
  std::string device = "cpu";  // train.device, resolved to a torch device by the trainer
  int64_t steps = 100;
  int64_t seq_len = 512;
  int64_t global_batch_size = 8;
  int64_t micro_batch_size = 1;
  bool recompute = false;
  double grad_clip = 1.0;
  std::string init_from;
  double lr = 2e-4;
  OptimizerOptions optimizer;
  ScheduleOptions schedule;
  int64_t checkpoint_interval = 100;
  int64_t checkpoint_keep = 2;
  std::vector<std::string> data_paths;
  std::vector<double> data_weights;
  std::string data_tokenizer;  // stores must carry this tokenizer's hash ("" = unchecked)
  bool mask_document_boundaries = false;
  int64_t prefetch = 2;
  double bias_update_rate = 1e-3;
  double aux_loss_alpha = 0.0;
  bool tensorboard = true;
  double peak_flops = 0;  // 0: measure
  bool qat = false;        // INT4 fake quantisation of qat_options.targets during training
  quant::QatOptions qat_options;
  // LoRA (lora.rank > 0): the base is frozen, only the adapters train, under lora.optimizer
  // ("adamw" or "muon") with the optim.* settings; QK-Clip and the router-bias update, which
  // would change the base, are off.
  quant::LoraOptions lora;
  std::string lora_optimizer = "adamw";
  bool lora_enabled() const { return lora.rank > 0; }
  parallel::ParallelLayout layout;  // layout.dp 0: the number of ranks / layout.pp
  double collective_timeout_s = 300;
  std::string backend = "auto";  // parallel.backend of the mesh's groups: auto, gloo or nccl
  bool router_fp64 = false;  // train.router_dtype "fp64"
  int64_t max_bad_steps = 5;     // consecutive non-finite steps (each skipped) before stopping
  int64_t debug_nan_at_step = 0;  // tests: the loss is NaN for steps [at, at + count), 1-based
  int64_t debug_nan_steps = 1;
  int64_t debug_fail_at_step = 0;  // tests: rank debug_fail_rank throws at the start of this step
  int64_t debug_fail_rank = 0;
  std::string recipe_toml;  // the resolved recipe, stored in checkpoints

  // The layout for `world_size` ranks, with dp 0 replaced by world_size / pp.
  parallel::ParallelLayout resolved_layout(int64_t world_size) const;
  // parallel.backend with "auto" resolved: nccl when train.device is a GPU, gloo otherwise.
  std::string group_backend() const;
  // Micro-batches per optimizer step on each of `dp_size` ranks.
  int64_t accumulation_steps(int64_t dp_size = 1) const;
  // Everything, including the parallel layout for `world_size` ranks.
  void validate(int64_t world_size = 1) const;
  static TrainOptions from_recipe(const Recipe& recipe);
};

}  // namespace k2f::train
