#include "train/rl/key_chain_env.h"

#include <algorithm>

namespace k2f::train::rl {

std::vector<RlTask> KeyChainEnvironment::tasks(const std::vector<data::KeyChainProblem>& problems) const {
  std::vector<RlTask> out;
  out.reserve(problems.size());
  for (const auto& problem : problems) {
    out.push_back(single_question_task(chat_, problem.question(), problem.answer, data::lookup_tools_json()));
    out.back().expected_tool_results = problem.results();
  }
  return out;
}

// Training runs ask for steps * prompts_per_step tasks; the task holds fewer distinct chains of one
// length (about 875), so they repeat in order.
std::vector<RlTask> KeyChainEnvironment::train_tasks(int64_t count) const {
  const int64_t distinct = std::min<int64_t>(count, 800);
  const auto once = tasks(data::make_key_chain_problems(task_seed_, distinct, min_train_length_, chain_length_,
                                                        data::TaskSplit::train));
  std::vector<RlTask> out;
  out.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) out.push_back(once[static_cast<size_t>(i % distinct)]);
  return out;
}

// The same chains for every run and model (seed 0 orders the held-out split), at most 100.
std::vector<RlTask> KeyChainEnvironment::heldout_tasks(int64_t count) const {
  return tasks(data::make_key_chain_problems(0, std::min<int64_t>(count, 100), chain_length_,
                                             chain_length_, data::TaskSplit::heldout));
}

std::optional<std::string> KeyChainEnvironment::answer_in(const std::string& final_content) const {
  const auto first = final_content.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return std::nullopt;
  const std::string text = final_content.substr(first, final_content.find_last_not_of(" \t\r\n") - first + 1);
  const std::string prefix = "Answer: ";
  if (text.compare(0, prefix.size(), prefix) != 0 || text.size() == prefix.size()) return std::nullopt;
  return text.substr(prefix.size());
}

}  // namespace k2f::train::rl
