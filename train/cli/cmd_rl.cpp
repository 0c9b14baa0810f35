// `k2forge rl`: RL fine-tuning of a thinking, tool-calling model from a recipe ([rl] section;
// train/rl/rl_trainer.h). Prints held-out accuracy before and after RL; --eval-only prints the
// held-out accuracy of train.init_from (or --model) without training, for any model. A run
// directory with an RL checkpoint resumes (--stop-after N stops with one after N steps). Under
// mpirun the ranks split every step's rollouts and sum their gradients (data parallel). With
// --adapter (or [lora]) the base stays frozen and only LoRA adapters train.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>

#include "base/error.h"
#include "parallel/bootstrap.h"
#include "train/cli/command.h"
#include "train/parallel_runtime.h"
#include "train/rl/rl_trainer.h"

namespace k2f::cli {

int run_rl(const Args& args) {
  cxxopts::Options options("k2forge rl",
                           "RL fine-tuning with tool calls on the embedded reasoning task or your JSONL prompts");
  options.add_options()("recipe", "TOML recipe with an [rl] section", cxxopts::value<std::string>())(
      "set", "override a recipe key: section.key=value (repeatable)", cxxopts::value<std::vector<std::string>>())(
      "eval-only", "only measure held-out accuracy of the starting model and print it as JSON")(
      "model", "with --eval-only: the model to evaluate (default train.init_from)", cxxopts::value<std::string>())(
      "adapter", "an HF PEFT LoRA adapter directory on the base (train.init_from or --model): RL trains the adapter, "
      "--eval-only evaluates base + adapter (rl.adapter)", cxxopts::value<std::string>())(
      "stop-after", "stop with a checkpoint after this many steps (rerun the same command to continue)",
      cxxopts::value<int64_t>()->default_value("0"))("quiet", "no per-step console lines");
  bool help = false;
  const auto parsed = parse_args(options, args, help);
  if (help) return 0;
  std::vector<std::string> overrides =
      recipe_overrides(parsed);
  if (parsed.count("model")) {
    check(parsed.count("eval-only") > 0, "--model is only for --eval-only (RL starts from train.init_from)");
    overrides.push_back("train.init_from=" + parsed["model"].as<std::string>());
  }
  if (parsed.count("adapter")) overrides.push_back("rl.adapter=" + parsed["adapter"].as<std::string>());
  const auto recipe = train::Recipe::load(required_option(parsed, "recipe", "rl"), overrides);
  auto rl_options = train::rl::RlOptions::from_recipe(recipe);
  train::rl::RlRunOptions run_options;
  run_options.quiet_console = parsed.count("quiet") > 0;
  run_options.stop_after_steps = parsed["stop-after"].as<int64_t>();
  check(run_options.stop_after_steps >= 0, "--stop-after (", run_options.stop_after_steps, ") must be >= 0");
  if (parsed.count("eval-only")) {
    rl_options.train.run_dir += "/eval-only";
    run_options.evaluate_only = true;
    train::rl::RlTrainer trainer(std::move(rl_options), run_options);
    const auto eval = trainer.evaluate();
    const Json report = {{"model", recipe.get_string("train.init_from")}, {"heldout", eval.to_json()},
                         {"samples", eval.samples}};
    std::cout << report.dump(-1, ' ', false, Json::error_handler_t::replace) << std::endl;
    return 0;
  }
  // Under a launcher (mpirun, torchrun, Slurm) the ranks split each step's rollouts (data parallel).
  const auto context = train::join_launched_ranks(rl_options.train.collective_timeout_s);
  std::unique_ptr<train::rl::RlTrainer> trainer;
  train::rl::RlRunResult result;
  try {
    trainer = std::make_unique<train::rl::RlTrainer>(std::move(rl_options), run_options, context);
    result = trainer->run();
  } catch (const parallel::AgreedFailure&) {
    throw;
  } catch (const std::exception& e) {
    if (!context) throw;
    const double timeout_s = recipe.get_float("parallel.timeout_s");
    throw Error(context->agree_on_failure(e.what(), std::chrono::milliseconds(static_cast<int64_t>(1000 * std::min(60.0, timeout_s))),
                                          [&] { trainer.reset(); }));
  }
  if (context && context->rank() != 0) return 0;
  Json summary = {{"heldout_before", result.before.to_json()}, {"steps", result.steps.size()}};
  if (!result.stopped_early) summary["heldout_after"] = result.after.to_json();
  std::cout << summary.dump() << std::endl;
  return 0;
}

}  // namespace k2f::cli
