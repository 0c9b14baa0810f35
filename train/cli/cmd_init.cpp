// `k2forge init`: builds a model from a recipe's [model] section and seed (train.seed), writes the
// resolved recipe into the run directory and exports the initial weights as an HF directory.
#include <filesystem>

#include "base/error.h"
#include "base/log.h"
#include "model/hf_export.h"
#include "model/kimi_model.h"
#include "model/param_count.h"
#include "train/cli/command.h"
#include "train/recipe.h"

namespace k2f::cli {

int run_init(const Args& args) {
  cxxopts::Options options("k2forge init", "Initialise a model from a recipe and export it as an HF directory");
  options.add_options()("recipe", "TOML recipe", cxxopts::value<std::string>())(
      "set", "override a recipe key: section.key=value (repeatable)", cxxopts::value<std::vector<std::string>>())(
      "out", "HF output directory (default: <train.run_dir>/init-hf)", cxxopts::value<std::string>())(
      "format", "hf-bf16 or hf-fp32", cxxopts::value<std::string>()->default_value("hf-bf16"));
  bool help = false;
  const auto parsed = parse_args(options, args, help);
  if (help) return 0;
  const std::vector<std::string> overrides =
      recipe_overrides(parsed);
  const auto recipe = train::Recipe::load(required_option(parsed, "recipe", "init"), overrides);
  const auto config = train::model_config_from_recipe(recipe);
  const std::string run_dir = recipe.get_string("train.run_dir");
  const std::string out = parsed.count("out") ? parsed["out"].as<std::string>()
                                              : (std::filesystem::path(run_dir) / "init-hf").string();
  const std::string format = parsed["format"].as<std::string>();
  check(format == "hf-bf16" || format == "hf-fp32", "--format \"", format, "\": expected hf-bf16 or hf-fp32");
  check(!std::filesystem::exists(out), out, ": already exists; k2forge never overwrites an export (choose a new path)");

  const auto counts = model::count_parameters(config);
  log::info("model: ", counts.total(), " parameters (", counts.active(), " active per token)");
  recipe.write_resolved(run_dir);
  model::KimiForCausalLM lm(config);
  model::init_weights(lm, static_cast<uint64_t>(recipe.get_int("train.seed")));
  model::HfExportOptions export_options;
  export_options.dtype = format == "hf-bf16" ? torch::kBFloat16 : torch::kFloat32;
  model::export_hf_directory(*lm, config, out, export_options);
  return 0;
}

}  // namespace k2f::cli
