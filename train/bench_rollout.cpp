#include "train/bench_rollout.h"

#include <algorithm>

#include "base/error.h"
#include "base/stopwatch.h"
#include "data/chat_template.h"
#include "train/model_loading.h"
#include "train/rl/environment.h"
#include "train/rl/rollout.h"

namespace k2f::train {

namespace {

struct Measured {
  std::vector<rl::Episode> episodes;
  double seconds = 0;
  int64_t sampled = 0;
};

Json describe(const Measured& m) {
  int64_t calls = 0, most_calls = 0, tokens = 0;
  for (const auto& e : m.episodes) {
    calls += e.num_tool_calls;
    most_calls = std::max(most_calls, e.num_tool_calls);
    tokens += static_cast<int64_t>(e.tokens.size());
  }
  const double n = static_cast<double>(std::max<size_t>(m.episodes.size(), 1));
  return {{"seconds", m.seconds},
          {"sampled_tokens", m.sampled},
          {"tokens_per_s", static_cast<double>(m.sampled) / std::max(m.seconds, 1e-9)},
          {"tool_calls_per_episode", static_cast<double>(calls) / n},
          {"tool_calls_max", most_calls},
          {"episode_tokens_mean", static_cast<double>(tokens) / n}};
}

}  // namespace

Json bench_rollout(const rl::RlOptions& options, const RolloutBenchOptions& bench) {
  check(bench.episodes > 0, "--episodes (", bench.episodes, ") must be positive");
  check(bench.slots > 0, "--slots (", bench.slots, ") must be positive");
  const auto tokenizer = data::Tokenizer::load(options.tokenizer);
  const data::ChatTemplate chat(tokenizer);
  rl::ToolRunner tools(options.tool_limits);
  tools.add(std::make_shared<rl::CalculatorTool>());
  tools.add(std::make_shared<rl::LookupTool>());
  const auto env = rl::make_environment(options, chat);
  const auto tasks = env->train_tasks(bench.episodes);
  const std::string model_dir = bench.model.empty() ? options.train.init_from : bench.model;
  auto lm = load_model(resolve_model_dir(model_dir));
  lm->compute_dtype = options.train.dtype;
  lm->eval();
  const rl::RolloutEngine engine(tokenizer, chat, tools);

  std::vector<std::vector<int64_t>> prompts;
  rl::RolloutOptions rollout;
  rollout.sampling.temperature = options.temperature_start;
  rollout.sampling.top_p = options.top_p;
  rollout.sampling.top_k = options.top_k;
  rollout.max_response_tokens = options.max_response_tokens;
  rollout.max_tool_calls = options.max_tool_calls;
  rollout.slots = bench.slots;
  for (size_t i = 0; i < tasks.size(); ++i) {
    prompts.push_back(tasks[i].prompt);
    rollout.row_seeds.push_back(1000 + i);
  }
  const auto measure = [&](rl::RolloutBatching batching) {
    rl::RolloutOptions o = rollout;
    o.batching = batching;
    Measured m;
    const auto start = SteadyClock::now();
    m.episodes = engine.run_model(lm, prompts, o);
    m.seconds = seconds_since(start);
    for (const auto& e : m.episodes) m.sampled += e.response_tokens;
    return m;
  };
  const Measured rounds = measure(rl::RolloutBatching::rounds);
  const Measured continuous = measure(rl::RolloutBatching::continuous);
  int64_t same = 0, correct_rounds = 0, correct_continuous = 0;
  for (size_t i = 0; i < tasks.size(); ++i) {
    same += rounds.episodes[i].tokens == continuous.episodes[i].tokens;
    correct_rounds += env->judge(rounds.episodes[i], tasks[i]).correct;
    correct_continuous += env->judge(continuous.episodes[i], tasks[i]).correct;
  }
  Json report = {{"model", model_dir},
                 {"environment", options.environment},
                 {"episodes", bench.episodes},
                 {"slots", bench.slots},
                 {"temperature", rollout.sampling.temperature},
                 {"rounds", describe(rounds)},
                 {"continuous", describe(continuous)},
                 {"speedup", (static_cast<double>(continuous.sampled) / continuous.seconds) /
                                 std::max(static_cast<double>(rounds.sampled) / rounds.seconds, 1e-9)},
                 {"episodes_with_identical_tokens", same},
                 {"correct_rounds", correct_rounds},
                 {"correct_continuous", correct_continuous}};
  if (options.environment == "key_chain")
    report["chain_lengths"] = {options.chain_min_length > 0 ? options.chain_min_length : options.chain_length,
                               options.chain_length};
  return report;
}

}  // namespace k2f::train
