// The plan of a recipe: per-GPU memory of every pipeline stage, FLOPs, communication and step
// time on the recipe's [cluster], as a table for people and JSON for scripts. `k2forge plan`
// prints it; `k2forge train` refuses a recipe whose plan does not fit (check_plan_fits).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/json_io.h"
#include "train/plan/memory_plan.h"
#include "train/plan/plan_inputs.h"
#include "train/plan/step_time_estimate.h"
#include "train/recipe.h"

namespace k2f::train::plan {

struct Plan {
  PlanInputs inputs;
  std::vector<StageMemory> stages;
  int64_t peak_stage = 0;  // the stage with the largest total
  FlopsPerToken flops;
  std::optional<StepTimeEstimate> time;  // with a cluster

  const StageMemory& peak() const { return stages[static_cast<size_t>(peak_stage)]; }
  // True without a cluster (nothing to compare with).
  bool fits() const;
  Json to_json() const;
  std::string to_table() const;
};

Plan make_plan(const PlanInputs& inputs);

struct RolloutShape {
  int64_t sequences = 0;  // per GPU
  int64_t tokens = 0;     // 0: train.seq_len
};
// TrainOptions and [cluster] of `recipe`; `lora_base` as PlanInputs::from_options reads it.
Plan plan_recipe(const Recipe& recipe, const RolloutShape& rollout = {}, const std::string& lora_base = "");

// LoRA plans: the peak per-GPU bytes and fit of the same plan at other ranks, with the recipe's
// targets and with the routed experts added to them.
struct LoraChoice {
  int64_t rank = 0;
  bool with_experts = false;
  double peak_total_bytes = 0;
  bool fits = false;
};
std::vector<LoraChoice> lora_choices(const Plan& plan);

// Throws, with the peak stage's figures and what to change, when the plan does not fit.
void check_plan_fits(const Plan& plan);

}  // namespace k2f::train::plan
