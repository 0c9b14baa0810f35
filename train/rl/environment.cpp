#include "train/rl/environment.h"

#include "base/error.h"
#include "train/rl/arithmetic_env.h"
#include "train/rl/jsonl_prompt_env.h"
#include "train/rl/key_chain_env.h"
#include "train/rl/rl_options.h"

namespace k2f::train::rl {

RlTask single_question_task(const data::ChatTemplate& chat, const std::string& question, std::string answer,
                            const nlohmann::ordered_json& tools_json) {
  const nlohmann::ordered_json messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", question}}});
  const auto ids = chat.render_generation_prompt(messages, tools_json);
  return {question, std::move(answer), {ids.begin(), ids.end()}, {}};
}

EpisodeOutcome RlEnvironment::judge(const Episode& episode, const RlTask& task) const {
  EpisodeOutcome outcome;
  outcome.truncated = episode.truncated;
  outcome.length = episode.response_tokens;
  const auto answer = answer_in(episode.final_content);
  outcome.correct = !episode.truncated && answer && *answer == task.answer;
  const bool calls_ok = episode.tool_stats.count(ToolEvent::malformed) == 0 &&
                        episode.tool_stats.count(ToolEvent::unknown_tool) == 0;
  outcome.format_ok = !episode.truncated && episode.think_ok && calls_ok && answer.has_value();
  if (!task.expected_tool_results.empty())
    outcome.progress = outcome.correct ? 1.0 : in_order_share(episode.tool_messages, task.expected_tool_results);
  return outcome;
}

std::unique_ptr<RlEnvironment> make_environment(const RlOptions& options, const data::ChatTemplate& chat,
                                                const std::vector<ProgramToolDeclaration>& tools) {
  if (options.environment == "jsonl")
    return std::make_unique<JsonlPromptEnvironment>(chat, options.prompts, options.eval_prompts, tools);
  if (options.environment == "key_chain")
    return std::make_unique<KeyChainEnvironment>(chat, options.task_seed, options.chain_length,
                                                 options.chain_min_length > 0 ? options.chain_min_length
                                                                              : options.chain_length);
  check(options.environment == "arithmetic", "rl.environment (\"", options.environment,
        "\") must be \"arithmetic\", \"key_chain\" or \"jsonl\"");
  return std::make_unique<ArithmeticEnvironment>(chat, options.task_seed);
}

}  // namespace k2f::train::rl
