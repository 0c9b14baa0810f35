// The RL environment of the embedded task: each problem becomes a K2 generation prompt (the
// calculator declared, the question as the user turn, thinking opened by the model itself), and
// each finished episode is judged by the task's exact checker. Problems come from
// data/arithmetic_task (train split for RL, held-out split for evaluation).
#pragma once

#include <cstdint>
#include <vector>

#include "data/arithmetic_task.h"
#include "data/chat_template.h"
#include "train/rl/rewards.h"
#include "train/rl/rollout.h"

namespace k2f::train::rl {

class ArithmeticEnvironment {
 public:
  explicit ArithmeticEnvironment(const data::ChatTemplate& chat) : chat_(chat) {}

  std::vector<int64_t> prompt(const data::ArithmeticProblem& problem) const;
  // correct: the final content is "Answer: N" with the exact N; format_ok: every turn thought
  // properly, no malformed or unknown tool call, and an answer in that form before the budget.
  EpisodeOutcome judge(const Episode& episode, const data::ArithmeticProblem& problem) const;

 private:
  const data::ChatTemplate& chat_;
};

}  // namespace k2f::train::rl
