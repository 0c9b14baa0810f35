// `k2forge train`: pretraining and fine-tuning from a recipe. Resumes from the run directory's
// newest intact checkpoint unless --fresh; --check validates the recipe and prints the layout.
// Under a launcher (`mpirun -np N k2forge train ...`) every rank loads the recipe, the ranks join,
// and they agree that every rank's recipe loaded before anything else communicates.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <optional>

#include "base/error.h"
#include "base/log.h"
#include "model/param_count.h"
#include "parallel/bootstrap.h"
#include "train/cli/command.h"
#include "train/plan/plan.h"
#include "train/trainer.h"

namespace k2f::cli {

namespace {

// --check: the recipe against the launcher's ranks, or, outside a launcher, against the ranks its
// layout asks for (parallel.pp x parallel.dp); nothing is joined.
int check_recipe(const train::Recipe& recipe, const parallel::LaunchEnv& launch) {
  auto o = train::TrainOptions::from_recipe(recipe);
  o.data_paths = o.data_paths.empty() ? std::vector<std::string>{"(none)"} : o.data_paths;
  const int64_t world_size = launch.world_size > 1 ? launch.world_size : o.layout.pp * std::max<int64_t>(o.layout.dp, 1);
  o.validate(world_size);
  const auto layout = o.resolved_layout(world_size);
  const auto counts = model::count_parameters(o.model);
  std::cout << "recipe ok: " << counts.total() << " parameters (" << counts.active() << " active), " << o.steps
            << " steps x " << o.global_batch_size << " sequences x " << o.seq_len << " tokens, "
            << o.accumulation_steps(layout.dp) << " micro-batches of " << o.micro_batch_size << " per step"
            << (world_size > 1 ? " on each of " + std::to_string(world_size) + " ranks (dp " + std::to_string(layout.dp) +
                                     ", ep " + std::to_string(layout.ep) + ", " + o.group_backend() + " groups)"
                               : std::string())
            << "\n";
  return 0;
}

// With a [cluster] in the recipe, the planner runs first: a layout whose peak stage does not fit
// the GPUs' memory stops here (unless --ignore-plan). Recipes without a cluster skip this.
void check_plan(const train::Recipe& recipe, bool ignore_plan) {
  if (!train::plan::ClusterSpec::from_recipe(recipe)) return;
  const auto plan = train::plan::plan_recipe(recipe);
  if (plan.fits()) return;
  if (!ignore_plan) train::plan::check_plan_fits(plan);
  log::warn("--ignore-plan: the plan needs ", plan.peak().total() / 1e9, " GB per GPU, more than the cluster's ",
            plan.inputs.cluster->memory_gib, " GiB; continuing");
}

}  // namespace

int run_train(const Args& args) {
  cxxopts::Options options("k2forge train", "Train or fine-tune from a TOML recipe (resumes by default)");
  options.add_options()("recipe", "TOML recipe", cxxopts::value<std::string>())(
      "set", "override a recipe key: section.key=value (repeatable)", cxxopts::value<std::vector<std::string>>())(
      "fresh", "start from the recipe's initialisation; the run dir must hold no checkpoint")(
      "stop-after", "stop (with a checkpoint) after N steps of this invocation", cxxopts::value<int64_t>()->default_value("0"))(
      "check", "validate the recipe, print the model and batch layout, and exit")(
      "ignore-plan", "train even when the recipe's [cluster] plan says the layout does not fit in memory");
  bool help = false;
  const auto parsed = parse_args(options, args, help);
  if (help) return 0;
  const std::vector<std::string> overrides =
      recipe_overrides(parsed);
  const std::string recipe_path = required_option(parsed, "recipe", "train");
  const auto launch = parallel::detect_launch_env();
  const bool ignore_plan = parsed.count("ignore-plan") > 0;
  if (parsed.count("check")) {
    const auto recipe = train::Recipe::load(recipe_path, overrides);
    check_plan(recipe, ignore_plan);
    return check_recipe(recipe, launch);
  }

  // One process: errors surface directly. Several: a rank whose recipe fails still joins, and the
  // agreement below stops every rank with its message (no rank waits for one that already quit).
  std::optional<train::Recipe> recipe;
  std::string load_error;
  std::shared_ptr<parallel::DistributedContext> context;
  if (launch.world_size == 1) {
    recipe = train::Recipe::load(recipe_path, overrides);
  } else {
    try {
      recipe = train::Recipe::load(recipe_path, overrides);
    } catch (const std::exception& e) {
      load_error = e.what();
    }
    const double timeout_s = recipe ? recipe->get_float("parallel.timeout_s") : 0;
    context = train::join_launched_ranks(timeout_s > 0 ? timeout_s : parallel::DistOptions{}.timeout_s);
    if (context->rank() != 0) log::quiet() = true;  // rank 0 speaks for all; warnings still show
  }
  train::TrainOptions train_options;
  const auto read_options = [&] {
    if (!recipe) throw Error(load_error);
    train_options = train::TrainOptions::from_recipe(*recipe);
    check_plan(*recipe, ignore_plan);
  };
  if (context) {
    context->check_on_all_ranks(read_options);
  } else {
    read_options();
  }
  train::TrainerRunOptions run_options;
  run_options.fresh = parsed.count("fresh") > 0;
  run_options.stop_after_steps = parsed["stop-after"].as<int64_t>();
  check(run_options.stop_after_steps >= 0, "--stop-after (", run_options.stop_after_steps, ") must be >= 0");
  run_options.handle_stop_signals = true;  // preemption: checkpoint after the current step, exit 0
  std::vector<train::StepMetrics> history;
  std::unique_ptr<train::Trainer> trainer;
  try {
    trainer = std::make_unique<train::Trainer>(train_options, run_options, context);
    history = trainer->run();
  } catch (const parallel::AgreedFailure&) {
    throw;
  } catch (const std::exception& e) {
    if (!context) throw;
    // Every rank reports the first failure rather than its own broken collective: this rank
    // claims first, then drops the trainer's process groups, so peers waiting on it fail now.
    const double timeout_s = recipe->get_float("parallel.timeout_s");
    const double wait_s = std::min(60.0, timeout_s > 0 ? timeout_s : 60.0);
    throw Error(context->agree_on_failure(e.what(), std::chrono::milliseconds(static_cast<int64_t>(1000 * wait_s)),
                                          [&] { trainer.reset(); }));
  }
  if (!history.empty()) {
    log::info("trained steps ", history.front().step, "..", history.back().step, ": loss ", history.front().loss,
              " -> ", history.back().loss);
  }
  return 0;
}

}  // namespace k2f::cli
