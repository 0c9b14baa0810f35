#include "train/rl/evaluation.h"

#include <algorithm>

namespace k2f::train::rl {

Json EvalReport::to_json() const {
  return {{"problems", problems},
          {"accuracy", accuracy},
          {"format_rate", format_rate},
          {"truncation_rate", truncation_rate},
          {"tool_calls_per_episode", tool_calls_per_episode},
          {"progress", progress},
          {"response_tokens", response_tokens}};
}

EvalReport EvalReport::from_json(const Json& json, Json samples) {
  EvalReport report;
  report.problems = json.at("problems").get<int64_t>();
  report.accuracy = json.at("accuracy").get<double>();
  report.format_rate = json.at("format_rate").get<double>();
  report.truncation_rate = json.at("truncation_rate").get<double>();
  report.tool_calls_per_episode = json.at("tool_calls_per_episode").get<double>();
  report.progress = json.value("progress", 0.0);  // absent from reports written before it existed
  report.response_tokens = json.at("response_tokens").get<double>();
  report.samples = std::move(samples);
  return report;
}

EvalReport evaluate_heldout(model::KimiForCausalLM& lm, const RolloutEngine& engine, const RlEnvironment& env,
                            const EvalOptions& options) {
  const auto problems = env.heldout_tasks(options.problems);
  EvalReport report;
  report.problems = static_cast<int64_t>(problems.size());
  if (problems.empty()) return report;
  const bool was_training = lm->is_training();
  lm->eval();
  // This shard's batches, rolled out together; each problem samples from its own seed, so the
  // figures do not depend on the batch size, the batching or the number of shards.
  std::vector<size_t> mine;
  for (size_t i = 0; i < problems.size(); ++i)
    if (static_cast<int64_t>((i / static_cast<size_t>(options.batch_size)) % static_cast<size_t>(options.num_shards)) ==
        options.shard)
      mine.push_back(i);
  std::vector<std::vector<int64_t>> prompts;
  RolloutOptions rollout = options.rollout;
  rollout.slots = options.batch_size;
  rollout.row_seeds.clear();
  for (const size_t i : mine) {
    prompts.push_back(problems[i].prompt);
    rollout.row_seeds.push_back(options.rollout.seed * 1000003ull + i);
  }
  const auto episodes = engine.run_model(lm, prompts, rollout);
  for (size_t j = 0; j < mine.size(); ++j) {
    const size_t i = mine[j];
    const Episode& e = episodes[j];
    const EpisodeOutcome o = env.judge(e, problems[i]);
    report.accuracy += o.correct;
    report.format_rate += o.format_ok;
    report.truncation_rate += o.truncated;
    report.tool_calls_per_episode += static_cast<double>(e.num_tool_calls);
    report.progress += o.progress;
    report.response_tokens += static_cast<double>(e.response_tokens);
    if (options.tokenizer != nullptr && static_cast<int64_t>(i) < options.num_samples) {
      const std::vector<int32_t> response(e.tokens.begin() + e.prompt_length, e.tokens.end());
      report.samples.push_back({{"problem", i},
                                {"question", problems[i].question},
                                {"answer", problems[i].answer},
                                {"response", options.tokenizer->decode(response)},
                                {"correct", o.correct}});
    }
  }
  const double n = static_cast<double>(problems.size());
  for (double* v : {&report.accuracy, &report.format_rate, &report.truncation_rate, &report.tool_calls_per_episode,
                    &report.progress, &report.response_tokens})
    *v /= n;
  if (was_training) lm->train();
  return report;
}

EvalReport combine_eval_shards(const std::vector<EvalReport>& shards) {
  EvalReport whole;
  std::vector<Json> samples;
  for (const auto& shard : shards) {
    whole.problems = shard.problems;
    whole.accuracy += shard.accuracy;
    whole.format_rate += shard.format_rate;
    whole.truncation_rate += shard.truncation_rate;
    whole.tool_calls_per_episode += shard.tool_calls_per_episode;
    whole.progress += shard.progress;
    whole.response_tokens += shard.response_tokens;
    for (const auto& sample : shard.samples) samples.push_back(sample);
  }
  std::stable_sort(samples.begin(), samples.end(),
                   [](const Json& a, const Json& b) { return a.at("problem").get<int64_t>() < b.at("problem").get<int64_t>(); });
  for (auto& sample : samples) whole.samples.push_back(std::move(sample));
  return whole;
}

}  // namespace k2f::train::rl
