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
};

struct EvalReport {
  int64_t problems = 0;
  double accuracy = 0;         // fraction with the exact answer
  double format_rate = 0;
  double truncation_rate = 0;
  double tool_calls_per_episode = 0;
  double response_tokens = 0;  // mean sampled tokens
  Json samples = Json::array();  // {"question", "answer", "response", "correct"} (not in to_json)
  Json to_json() const;
  static EvalReport from_json(const Json& json, Json samples = Json::array());  // to_json's fields
};

EvalReport evaluate_heldout(model::KimiForCausalLM& lm, const RolloutEngine& engine, const RlEnvironment& env,
                            const EvalOptions& options);

}  // namespace k2f::train::rl
