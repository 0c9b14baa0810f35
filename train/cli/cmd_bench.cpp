// `k2forge bench NAME`: the project's benchmarks, printing JSON.
#include <iostream>

#include "base/error.h"
#include "train/bench_data.h"
#include "train/bench_generate.h"
#include "train/bench_model.h"
#include "train/bench_quant.h"
#include "train/bench_rollout.h"
#include "train/bench_train.h"
#include "train/cli/command.h"

namespace k2f::cli {

int run_bench(const Args& args) {
  cxxopts::Options options("k2forge bench", "Benchmarks. NAME: model (forward+backward, fp32 vs bf16), train (whole steps, time split), generate (decode with the latent KV cache vs recompute), tokenizer (encode MB/s), data (loader tokens/s), quant (INT4 pack, W4A16 vs bf16 linear at K2 expert shapes, QAT step overhead), rollout (agentic RL rollouts of an RL recipe: continuous vs rounds batching)");
  options.add_options()("name", "benchmark name", cxxopts::value<std::string>())(
      "recipe", "recipe whose [model] is benchmarked (default: recipes/tiny.toml for generate, else recipes/bench_moe.toml)",
      cxxopts::value<std::string>())(
      "set", "override a recipe key (repeatable)", cxxopts::value<std::vector<std::string>>())(
      "steps", "timed steps per dtype", cxxopts::value<int64_t>()->default_value("3"))(
      "lora-rank", "train: also time LoRA steps of this rank on the model's INT4 export (0: no)",
      cxxopts::value<int64_t>()->default_value("0"))(
      "batch", "sequences per step (0: train.micro_batch_size)", cxxopts::value<int64_t>()->default_value("0"))(
      "tokenizer", "tokenizer, data: tokenizer directory", cxxopts::value<std::string>()->default_value("assets/tokenizer"))(
      "corpus", "tokenizer, data: .jsonl/.txt text", cxxopts::value<std::string>()->default_value("assets/corpus/python_docs_train.jsonl"))(
      "megabytes", "tokenizer: text size (the corpus repeated)", cxxopts::value<double>()->default_value("10"))(
      "seq-len", "data: tokens per sequence minus one", cxxopts::value<int64_t>()->default_value("512"))(
      "seconds", "data: seconds per measured loader configuration", cxxopts::value<double>()->default_value("2"))(
      "new-tokens", "generate: tokens generated per row", cxxopts::value<int64_t>()->default_value("512"))(
      "prompt-tokens", "generate: random prompt length", cxxopts::value<int64_t>()->default_value("16"))(
      "dtypes", "generate: what to time, any of fp32, bf16 and int4 (routed experts packed, W4A16, vs bf16)",
      cxxopts::value<std::vector<std::string>>()->default_value("fp32,bf16,int4"))(
      "model", "rollout: the model (default: the RL recipe's train.init_from)", cxxopts::value<std::string>())(
      "episodes", "rollout: episodes rolled out each way", cxxopts::value<int64_t>()->default_value("64"))(
      "slots", "rollout: episodes decoded at once", cxxopts::value<int64_t>()->default_value("16"))(
      "json", "print JSON only");
  options.parse_positional({"name"});
  options.positional_help("NAME");
  bool help = false;
  const auto parsed = parse_args(options, args, help);
  if (help) return 0;
  const std::string name = required_option(parsed, "name", "bench");
  check(name == "model" || name == "train" || name == "generate" || name == "tokenizer" || name == "data" ||
            name == "quant" || name == "rollout",
        "unknown benchmark \"", name, "\" (available: model, train, generate, tokenizer, data, quant, rollout)");
  if (name == "tokenizer" || name == "data") {
    train::DataBenchOptions data_options;
    data_options.tokenizer_dir = parsed["tokenizer"].as<std::string>();
    data_options.corpus = parsed["corpus"].as<std::string>();
    data_options.megabytes = parsed["megabytes"].as<double>();
    data_options.seq_len = parsed["seq-len"].as<int64_t>();
    data_options.min_seconds = parsed["seconds"].as<double>();
    if (parsed["batch"].as<int64_t>() > 0) data_options.batch = parsed["batch"].as<int64_t>();
    const Json report = name == "tokenizer" ? train::bench_tokenizer(data_options) : train::bench_data(data_options);
    std::cout << report.dump(parsed.count("json") ? -1 : 2) << std::endl;
    return 0;
  }
  const std::vector<std::string> overrides =
      recipe_overrides(parsed);
  const std::string default_recipe = name == "generate" ? "recipes/tiny.toml" : "recipes/bench_moe.toml";
  const auto recipe =
      train::Recipe::load(parsed.count("recipe") ? parsed["recipe"].as<std::string>() : default_recipe, overrides);
  if (name == "rollout") {
    check(parsed.count("recipe") > 0, "bench rollout needs --recipe (an RL recipe, e.g. recipes/tiny_chain_rl.toml)");
    train::RolloutBenchOptions rollout_options;
    if (parsed.count("model")) rollout_options.model = parsed["model"].as<std::string>();
    rollout_options.episodes = parsed["episodes"].as<int64_t>();
    rollout_options.slots = parsed["slots"].as<int64_t>();
    const auto report = train::bench_rollout(train::rl::RlOptions::from_recipe(recipe), rollout_options);
    std::cout << report.dump(parsed.count("json") ? -1 : 2) << std::endl;
    return 0;
  }
  if (name == "quant") {
    const std::string path = parsed.count("recipe") ? parsed["recipe"].as<std::string>() : default_recipe;
    auto with = overrides, without = overrides;
    with.push_back("quant.qat=true");
    without.push_back("quant.qat=false");
    train::QuantBenchOptions quant_options;
    quant_options.train_steps = parsed["steps"].as<int64_t>();
    const auto report =
        train::bench_quant(train::Recipe::load(path, without), train::Recipe::load(path, with), quant_options);
    std::cout << report.dump(parsed.count("json") ? -1 : 2) << std::endl;
    return 0;
  }
  if (name == "generate") {
    train::GenerateBenchOptions generate_options;
    generate_options.new_tokens = parsed["new-tokens"].as<int64_t>();
    generate_options.prompt_tokens = parsed["prompt-tokens"].as<int64_t>();
    if (parsed["batch"].as<int64_t>() > 0) generate_options.batch = parsed["batch"].as<int64_t>();
    generate_options.dtypes.clear();
    generate_options.int4 = false;
    for (const auto& dtype : parsed["dtypes"].as<std::vector<std::string>>()) {
      check(dtype == "fp32" || dtype == "bf16" || dtype == "int4", "--dtypes: \"", dtype,
            "\" is not fp32, bf16 or int4");
      if (dtype == "int4") {
        generate_options.int4 = true;
      } else {
        generate_options.dtypes.push_back(dtype == "fp32" ? torch::kFloat32 : torch::kBFloat16);
      }
    }
    std::cout << train::bench_generate(recipe, generate_options).dump(parsed.count("json") ? -1 : 2) << std::endl;
    return 0;
  }
  if (name == "train") {
    train::TrainBenchOptions train_options;
    train_options.steps = parsed["steps"].as<int64_t>();
    check(train_options.steps > 0, "--steps (", train_options.steps, ") must be positive");
    train_options.lora_rank = parsed["lora-rank"].as<int64_t>();
    check(train_options.lora_rank >= 0, "--lora-rank (", train_options.lora_rank, ") must be >= 0");
    const auto report = train::bench_train(recipe, train_options);
    if (!report.is_null()) std::cout << report.dump(parsed.count("json") ? -1 : 2) << std::endl;
    return 0;
  }
  train::ModelBenchOptions bench_options;
  bench_options.steps = parsed["steps"].as<int64_t>();
  bench_options.batch = parsed["batch"].as<int64_t>();
  check(bench_options.steps > 0, "--steps (", bench_options.steps, ") must be positive");
  const Json report = train::bench_model(recipe, bench_options);
  std::cout << report.dump(parsed.count("json") ? -1 : 2) << std::endl;
  return 0;
}

}  // namespace k2f::cli
