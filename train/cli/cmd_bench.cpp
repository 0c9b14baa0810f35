// `k2forge bench NAME`: the project's benchmarks, printing JSON.
#include <iostream>

#include "base/error.h"
#include "train/bench_model.h"
#include "train/cli/command.h"

namespace k2f::cli {

int run_bench(const Args& args) {
  cxxopts::Options options("k2forge bench", "Benchmarks. NAME: model (forward+backward, fp32 vs bf16)");
  options.add_options()("name", "benchmark name", cxxopts::value<std::string>())(
      "recipe", "recipe whose [model] is benchmarked", cxxopts::value<std::string>()->default_value("recipes/bench_moe.toml"))(
      "set", "override a recipe key (repeatable)", cxxopts::value<std::vector<std::string>>())(
      "steps", "timed steps per dtype", cxxopts::value<int64_t>()->default_value("3"))(
      "batch", "sequences per step (0: train.micro_batch_size)", cxxopts::value<int64_t>()->default_value("0"))(
      "json", "print JSON only");
  options.parse_positional({"name"});
  options.positional_help("NAME");
  bool help = false;
  const auto parsed = parse_args(options, args, help);
  if (help) return 0;
  const std::string name = required_option(parsed, "name", "bench");
  check(name == "model", "unknown benchmark \"", name, "\" (available: model)");
  const std::vector<std::string> overrides =
      parsed.count("set") ? parsed["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
  const auto recipe = train::Recipe::load(parsed["recipe"].as<std::string>(), overrides);
  train::ModelBenchOptions bench_options;
  bench_options.steps = parsed["steps"].as<int64_t>();
  bench_options.batch = parsed["batch"].as<int64_t>();
  check(bench_options.steps > 0, "--steps (", bench_options.steps, ") must be positive");
  const Json report = train::bench_model(recipe, bench_options);
  std::cout << report.dump(parsed.count("json") ? -1 : 2) << std::endl;
  return 0;
}

}  // namespace k2f::cli
