// RL environments: where an RL run's prompts and reference answers come from, and how an
// episode is judged. Every environment asks for the same answer form, a final content of
// "Answer: X", so rewards, metrics and evaluation are shared; environments differ in their tasks
// and in how they read X (an integer for the arithmetic task, trimmed text for user prompts).
//   rl.environment = "arithmetic"  the embedded seeded problems (arithmetic_env.h)
//   rl.environment = "key_chain"   the embedded horizon task: rl.chain_length sequential lookups
//                                  (key_chain_env.h)
//   rl.environment = "jsonl"       the user's prompts with reference answers (jsonl_prompt_env.h)
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/chat_template.h"
#include "train/rl/program_tool.h"
#include "train/rl/rewards.h"
#include "train/rl/rollout.h"

namespace k2f::train::rl {

struct RlOptions;

// One prompt of an environment with its reference answer.
struct RlTask {
  std::string question;          // what the user asked (eval.json samples)
  std::string answer;            // the reference, in the environment's canonical form
  std::vector<int64_t> prompt;   // the rendered generation prompt
  // What the tools return to an episode that does every step right, in order, where the
  // environment knows it (key_chain: each lookup's result); empty where it does not.
  std::vector<std::string> expected_tool_results;
};

// A task whose prompt is one user question with `tools_json` declared, ready for the model's turn.
RlTask single_question_task(const data::ChatTemplate& chat, const std::string& question, std::string answer,
                            const nlohmann::ordered_json& tools_json);

class RlEnvironment {
 public:
  virtual ~RlEnvironment() = default;

  // The run's training tasks, `count` of them (step s uses [s * P, (s + 1) * P)).
  virtual std::vector<RlTask> train_tasks(int64_t count) const = 0;
  // Up to `count` held-out tasks, the same ones for every model.
  virtual std::vector<RlTask> heldout_tasks(int64_t count) const = 0;
  // The answer a final content gives, in canonical form; nullopt when it is not "Answer: X".
  virtual std::optional<std::string> answer_in(const std::string& final_content) const = 0;

  // correct: not truncated and the answer equals the task's; format_ok: every turn thought
  // properly, no malformed or unknown tool call, and an answer in the task's form, in budget;
  // progress: the share of the task's expected tool results the episode reached in order
  // (in_order_share; 1 for a correct episode; 0 for every episode of a task that expects none).
  EpisodeOutcome judge(const Episode& episode, const RlTask& task) const;
};

// The environment rl.environment names, its tasks rendered with `chat`.
// `tools`: the user's tools (rl.tools), which jsonl records may name.
std::unique_ptr<RlEnvironment> make_environment(const RlOptions& options, const data::ChatTemplate& chat,
                                                const std::vector<ProgramToolDeclaration>& tools = {});

}  // namespace k2f::train::rl
