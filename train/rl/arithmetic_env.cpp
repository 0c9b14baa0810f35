#include "train/rl/arithmetic_env.h"

namespace k2f::train::rl {

std::vector<int64_t> ArithmeticEnvironment::prompt(const data::ArithmeticProblem& problem) const {
  const nlohmann::ordered_json messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", problem.question()}}});
  const auto ids = chat_.render_generation_prompt(messages, data::calculator_tools_json());
  return {ids.begin(), ids.end()};
}

EpisodeOutcome ArithmeticEnvironment::judge(const Episode& e, const data::ArithmeticProblem& problem) const {
  EpisodeOutcome o;
  o.truncated = e.truncated;
  o.length = e.response_tokens;
  o.correct = !e.truncated && data::answer_is_correct(e.final_content, problem);
  const bool calls_ok = e.tool_stats.count(ToolEvent::malformed) == 0 && e.tool_stats.count(ToolEvent::unknown_tool) == 0;
  o.format_ok = !e.truncated && e.think_ok && calls_ok && data::extract_answer(e.final_content).has_value();
  return o;
}

}  // namespace k2f::train::rl
