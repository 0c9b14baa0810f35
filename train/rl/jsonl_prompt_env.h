// RL on the user's own prompts (rl.environment = "jsonl"): rl.prompts and rl.eval_prompts are
// JSONL files, one task per line:
//   {"messages": [...], "tools": [...], "answer": "42"}
// `messages` and `tools` are OpenAI-style, as for `data build --kind chat` (tools optional; an
// entry of `tools` may also be the name of a tool of rl.tools, which stands for its declaration;
// the runner executes the calculator and rl.tools' programs, other declared tools answer
// "unknown tool"); the last message is
// the user turn the model answers. `answer` (a string or a number) is compared, trimmed, with the X
// of the episode's final "Answer: X". Training tasks are the file's lines in order, repeated as
// often as the run needs; every line is validated when the file is read, errors naming file,
// line and field.
#pragma once

#include <string>
#include <vector>

#include "train/rl/environment.h"
#include "train/rl/program_tool.h"

namespace k2f::train::rl {

class JsonlPromptEnvironment : public RlEnvironment {
 public:
  // `eval_path` may be empty: no held-out tasks (the evaluation reports 0 problems).
  JsonlPromptEnvironment(const data::ChatTemplate& chat, const std::string& train_path, const std::string& eval_path,
                         const std::vector<ProgramToolDeclaration>& named_tools = {});

  std::vector<RlTask> train_tasks(int64_t count) const override;
  std::vector<RlTask> heldout_tasks(int64_t count) const override;
  std::optional<std::string> answer_in(const std::string& final_content) const override;

 private:
  std::vector<RlTask> train_, heldout_;
};

// The tasks of one prompts file (exposed for tests).
// `named_tools`: the declarations a tool name in a record's "tools" stands for.
std::vector<RlTask> read_prompt_tasks(const data::ChatTemplate& chat, const std::string& path,
                                      const std::vector<ProgramToolDeclaration>& named_tools = {});

}  // namespace k2f::train::rl
