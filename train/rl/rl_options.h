// What `k2forge rl` reads from a recipe: the [rl] section (declared here, appended to the recipe
// schema, so unknown keys are errors naming the key like every other section) plus the shared
// [train] (run_dir, seed, dtype, steps, grad_clip, init_from), [optim], [schedule] and
// [checkpoint] keys, which mean what they mean for `k2forge train`. The model comes from
// train.init_from (an SFT checkpoint or HF directory), so [model] is not read.
#pragma once

#include <string>
#include <vector>

#include "train/recipe.h"
#include "train/rl/objectives.h"
#include "train/rl/rewards.h"
#include "train/rl/rollout.h"
#include "train/rl/tools.h"
#include "train/train_options.h"

namespace k2f::train::rl {

// The [rl] keys of the recipe schema.
std::vector<KeySpec> rl_recipe_keys();

struct RlOptions {
  TrainOptions train;             // run_dir, seed, dtype, steps, grad_clip, init_from, optimizer, schedule, checkpoints
  std::string tokenizer;          // rl.tokenizer
  std::string environment;        // "arithmetic" | "key_chain" | "jsonl"
  int64_t chain_length = 8;       // key_chain: lookups per task (held-out: exactly this many)
  int64_t chain_min_length = 0;   // key_chain: shortest training task (0: chain_length)
  std::string prompts;            // jsonl: training prompts file
  std::string eval_prompts;       // jsonl: held-out prompts file ("" = none)
  uint64_t task_seed = 0;         // problem stream (train split)
  int64_t prompts_per_step = 8;
  int64_t samples_per_prompt = 4; // the group of each prompt
  int64_t rollout_batch_prompts = 0;  // prompt groups per generation batch; 0: all of a rank's
  RolloutBatching rollout_batching = RolloutBatching::continuous;
  bool routing_replay = true;      // the trainer replays the sampler's expert choices (model/routing_replay.h)
  int64_t updates_per_batch = 1;
  int64_t micro_batch_size = 16;
  Objective objective = Objective::pmd_mean;
  double tau = 0.05;
  double clip_epsilon = 0.2;
  double kl_coef = 0.0;
  bool log_kl = true;             // keep a frozen reference for the kl metric even when kl_coef is 0
  double ptx_coef = 0.0;
  std::vector<std::string> ptx_data;
  int64_t ptx_batch_size = 4;
  int64_t ptx_seq_len = 256;
  double temperature_start = 1.0, temperature_end = 1.0;
  double top_p = 1.0;
  int64_t top_k = 0;
  int64_t max_response_tokens = 96;
  int64_t max_tool_calls = 2;
  std::string tools;               // rl.tools: the user's tool declarations ("" = the calculator only)
  std::string adapter;             // rl.adapter: a PEFT adapter on train.init_from that RL trains ("" = none)
  ToolLimits tool_limits;         // rl.tool_*: per call and per tool process
  RewardOptions rewards;
  int64_t eval_problems = 128;
  int64_t eval_batch_size = 64;
  double eval_temperature = 1.0;
  uint64_t eval_seed = 7;
  std::string recipe_toml;

  // Temperature of `step` (0-based): linear from temperature_start to temperature_end.
  double temperature(int64_t step) const;
  // LoRA RL: the base (train.init_from) stays frozen and only adapters train, fresh ones
  // (lora.rank > 0) or rl.adapter's.
  bool trains_adapters() const { return train.lora_enabled() || !adapter.empty(); }
  void validate() const;  // messages name the dotted recipe key and quote the value
  static RlOptions from_recipe(const Recipe& recipe);
};

}  // namespace k2f::train::rl
