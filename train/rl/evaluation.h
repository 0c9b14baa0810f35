// Held-out accuracy of a model on an environment's held-out tasks: one episode per task (tools
// on, the RL token budget), sampled at a fixed seed and temperature, so two models are compared
// on the same tasks with the same randomness. Used before and after RL and by
// `k2forge rl --eval-only`.
#pragma once

#include <cstdint>

#include "base/json_io.h"
#include "data/tokenizer.h"
#include "model/kimi_model.h"
#include "train/rl/environment.h"
#include "train/rl/rollout.h"

namespace k2f::train::rl {

struct EvalOptions {
  int64_t problems = 128;
  int64_t batch_size = 64;
  RolloutOptions rollout;      // sampling (temperature 0: greedy), budget, tool calls, seed
  const data::Tokenizer* tokenizer = nullptr;  // set with num_samples > 0 to keep decoded episodes
  int64_t num_samples = 0;     // the first episodes, decoded, in EvalReport::samples
  // Data-parallel evaluation: this process runs batches shard, shard + num_shards, ...; each
  // batch keeps its own seed, so the shards' reports add up to the whole (combine_eval_shards).
  int64_t shard = 0;
  int64_t num_shards = 1;
};

struct EvalReport {
  int64_t problems = 0;
  double accuracy = 0;         // fraction with the exact answer
  double format_rate = 0;
  double truncation_rate = 0;
  double tool_calls_per_episode = 0;
  double progress = 0;         // mean share of the steps done right in order (EpisodeOutcome)
  double response_tokens = 0;  // mean sampled tokens
  Json samples = Json::array();  // {"question", "answer", "response", "correct"} (not in to_json)
  Json to_json() const;
  static EvalReport from_json(const Json& json, Json samples = Json::array());  // to_json's fields
};

// Means over all `options.problems` problems; a shard's report holds its batches' share of each
// mean (its sums divided by the total count), so summing the shards' fields gives the means.
EvalReport evaluate_heldout(model::KimiForCausalLM& lm, const RolloutEngine& engine, const RlEnvironment& env,
                            const EvalOptions& options);

// The whole evaluation from every shard's report (in shard order): fields summed, samples merged
// in problem order.
EvalReport combine_eval_shards(const std::vector<EvalReport>& shards);

}  // namespace k2f::train::rl
