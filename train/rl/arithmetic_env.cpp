#include "train/rl/arithmetic_env.h"

namespace k2f::train::rl {

std::vector<RlTask> ArithmeticEnvironment::tasks(const std::vector<data::ArithmeticProblem>& problems) const {
  std::vector<RlTask> out;
  out.reserve(problems.size());
  for (const auto& problem : problems)
    out.push_back(single_question_task(chat_, problem.question(), std::to_string(problem.answer),
                                       data::calculator_tools_json()));
  return out;
}

std::vector<RlTask> ArithmeticEnvironment::train_tasks(int64_t count) const {
  return tasks(data::make_arithmetic_problems(task_seed_, count, data::TaskSplit::train));
}

std::vector<RlTask> ArithmeticEnvironment::heldout_tasks(int64_t count) const {
  return tasks(data::make_arithmetic_problems(task_seed_, count, data::TaskSplit::heldout));
}

std::optional<std::string> ArithmeticEnvironment::answer_in(const std::string& final_content) const {
  const auto number = data::extract_answer(final_content);
  if (!number) return std::nullopt;
  return std::to_string(*number);
}

}  // namespace k2f::train::rl
