// The RL environment of the embedded task: each problem becomes a K2 generation prompt (the
// calculator declared, the question as the user turn, thinking opened by the model itself), and
// the answer is the integer of "Answer: N". Problems come from data/arithmetic_task (train split
// from rl.task_seed for RL, held-out split for evaluation).
#pragma once

#include <cstdint>
#include <vector>

#include "data/arithmetic_task.h"
#include "train/rl/environment.h"

namespace k2f::train::rl {

class ArithmeticEnvironment : public RlEnvironment {
 public:
  ArithmeticEnvironment(const data::ChatTemplate& chat, uint64_t task_seed) : chat_(chat), task_seed_(task_seed) {}

  std::vector<RlTask> train_tasks(int64_t count) const override;
  std::vector<RlTask> heldout_tasks(int64_t count) const override;
  std::optional<std::string> answer_in(const std::string& final_content) const override;

 private:
  std::vector<RlTask> tasks(const std::vector<data::ArithmeticProblem>& problems) const;
  const data::ChatTemplate& chat_;
  uint64_t task_seed_;
};

}  // namespace k2f::train::rl
