// `k2forge plan`: before launching, whether a recipe's model, layout and batch fit its [cluster]
// and how fast a step will run: per-GPU memory by dtype for the peak pipeline stage, FLOPs per
// token, communication per step, step time, tokens/s per GPU and MFU (train/plan/). Exit code 0
// when it fits (or there is no cluster), 1 when it does not, so scripts can gate a launch on it.
#include <iostream>

#include "base/error.h"
#include "train/cli/command.h"
#include "train/plan/plan.h"

namespace k2f::cli {

int run_plan(const Args& args) {
  cxxopts::Options options("k2forge plan", "Memory per GPU, FLOPs, communication and step time of a recipe");
  options.add_options()("recipe", "TOML recipe (its [cluster] section names the machines)", cxxopts::value<std::string>())(
      "set", "override a recipe key: section.key=value (repeatable)", cxxopts::value<std::vector<std::string>>())(
      "rollout-sequences", "RL: sequences decoded at once per GPU, for the KV-cache line",
      cxxopts::value<int64_t>()->default_value("0"))(
      "rollout-tokens", "RL: tokens per rollout sequence (0: train.seq_len)", cxxopts::value<int64_t>()->default_value("0"))(
      "lora-base", "LoRA recipes whose train.init_from is not here: int4 (routed experts INT4, as K2 Thinking) or bf16",
      cxxopts::value<std::string>()->default_value("auto"))(
      "json", "print JSON");
  bool help = false;
  const auto parsed = parse_args(options, args, help);
  if (help) return 0;
  const std::vector<std::string> overrides =
      recipe_overrides(parsed);
  const auto recipe = train::Recipe::load(required_option(parsed, "recipe", "plan"), overrides);
  train::plan::RolloutShape rollout;
  rollout.sequences = parsed["rollout-sequences"].as<int64_t>();
  rollout.tokens = parsed["rollout-tokens"].as<int64_t>();
  const auto plan = train::plan::plan_recipe(recipe, rollout, parsed["lora-base"].as<std::string>());
  if (parsed.count("json")) {
    std::cout << plan.to_json().dump(2) << std::endl;
  } else {
    std::cout << plan.to_table() << std::flush;
  }
  return plan.fits() ? 0 : 1;
}

}  // namespace k2f::cli
