// `k2forge train`: pretraining and fine-tuning from a recipe. Resumes from the run directory's
// newest intact checkpoint unless --fresh; --check validates the recipe and prints the layout.
#include <iostream>

#include "base/error.h"
#include "base/log.h"
#include "model/param_count.h"
#include "train/cli/command.h"
#include "train/trainer.h"

namespace k2f::cli {

int run_train(const Args& args) {
  cxxopts::Options options("k2forge train", "Train or fine-tune from a TOML recipe (resumes by default)");
  options.add_options()("recipe", "TOML recipe", cxxopts::value<std::string>())(
      "set", "override a recipe key: section.key=value (repeatable)", cxxopts::value<std::vector<std::string>>())(
      "fresh", "start from the recipe's initialisation; the run dir must hold no checkpoint")(
      "stop-after", "stop (with a checkpoint) after N steps of this invocation", cxxopts::value<int64_t>()->default_value("0"))(
      "check", "validate the recipe, print the model and batch layout, and exit");
  bool help = false;
  const auto parsed = parse_args(options, args, help);
  if (help) return 0;
  const std::vector<std::string> overrides =
      parsed.count("set") ? parsed["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
  const auto recipe = train::Recipe::load(required_option(parsed, "recipe", "train"), overrides);
  auto train_options = train::TrainOptions::from_recipe(recipe);
  if (parsed.count("check")) {
    train_options.data_paths = train_options.data_paths.empty() ? std::vector<std::string>{"(none)"} : train_options.data_paths;
    train_options.validate();
    const auto counts = model::count_parameters(train_options.model);
    std::cout << "recipe ok: " << counts.total() << " parameters (" << counts.active() << " active), "
              << train_options.steps << " steps x " << train_options.global_batch_size << " sequences x "
              << train_options.seq_len << " tokens, " << train_options.accumulation_steps()
              << " micro-batches of " << train_options.micro_batch_size << " per step\n";
    return 0;
  }
  train::TrainerRunOptions run_options;
  run_options.fresh = parsed.count("fresh") > 0;
  run_options.stop_after_steps = parsed["stop-after"].as<int64_t>();
  check(run_options.stop_after_steps >= 0, "--stop-after (", run_options.stop_after_steps, ") must be >= 0");
  train::Trainer trainer(train_options, run_options);
  const auto history = trainer.run();
  if (!history.empty()) {
    log::info("trained steps ", history.front().step, "..", history.back().step, ": loss ", history.front().loss,
              " -> ", history.back().loss);
  }
  return 0;
}

}  // namespace k2f::cli
