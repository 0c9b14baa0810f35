// The RL environment of the horizon task (rl.environment = "key_chain"): each problem is a K2
// generation prompt with the lookup tool declared and a chain of rl.chain_length keys to follow
// (data/key_chain_task.h), so an episode that answers correctly has made exactly that many
// sequential calls, each on the last result. The answer is the X of "Answer: X", compared as text
// with the chain's four-digit value. Train problems come from rl.task_seed (the train split), with
// lengths drawn from [rl.chain_min_length, rl.chain_length] (a curriculum: a policy that never
// finishes a long chain gets no reward to learn from); the held-out ones (at most 100, the same
// for every run) from the held-out split, all of rl.chain_length.
#pragma once

#include <cstdint>
#include <vector>

#include "data/key_chain_task.h"
#include "train/rl/environment.h"

namespace k2f::train::rl {

class KeyChainEnvironment : public RlEnvironment {
 public:
  KeyChainEnvironment(const data::ChatTemplate& chat, uint64_t task_seed, int64_t chain_length,
                      int64_t min_train_length = 0)
      : chat_(chat),
        task_seed_(task_seed),
        chain_length_(chain_length),
        min_train_length_(min_train_length > 0 ? min_train_length : chain_length) {}

  std::vector<RlTask> train_tasks(int64_t count) const override;
  std::vector<RlTask> heldout_tasks(int64_t count) const override;
  std::optional<std::string> answer_in(const std::string& final_content) const override;

 private:
  std::vector<RlTask> tasks(const std::vector<data::KeyChainProblem>& problems) const;
  const data::ChatTemplate& chat_;
  uint64_t task_seed_;
  int64_t chain_length_;
  int64_t min_train_length_;
};

}  // namespace k2f::train::rl
