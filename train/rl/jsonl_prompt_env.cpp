#include "train/rl/jsonl_prompt_env.h"

#include <algorithm>

#include "base/error.h"
#include "data/document_reader.h"

namespace k2f::train::rl {
namespace {

std::string trimmed(const std::string& text) {
  const size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return "";
  const size_t end = text.find_last_not_of(" \t\r\n");
  return text.substr(begin, end - begin + 1);
}

// The reference answer of a record: a non-empty string, or a number written as JSON writes it.
std::string reference_answer(const nlohmann::ordered_json& record, const std::string& where) {
  check(record.contains("answer"), where, ": \"answer\" is missing (expected the reference answer, a string or number)");
  const auto& answer = record["answer"];
  check(answer.is_string() || answer.is_number(), where, ": \"answer\" must be a string or a number, got ",
        answer.type_name());
  const std::string text = trimmed(answer.is_string() ? answer.get<std::string>() : answer.dump());
  check(!text.empty(), where, ": \"answer\" is empty");
  return text;
}

// The record's "tools" with every name of a declared tool replaced by its declaration.
void expand_named_tools(nlohmann::ordered_json& record, const std::vector<ProgramToolDeclaration>& named_tools,
                        const std::string& where) {
  if (!record.contains("tools") || !record["tools"].is_array()) return;
  for (auto& tool : record["tools"]) {
    if (!tool.is_string()) continue;
    const std::string name = tool.get<std::string>();
    const auto found = std::find_if(named_tools.begin(), named_tools.end(),
                                    [&](const ProgramToolDeclaration& d) { return d.name == name; });
    check(found != named_tools.end(), where, ": \"tools\" names \"", name,
          "\", which rl.tools does not declare (expected a declaration object or the name of a tool of rl.tools)");
    tool = found->declaration();
  }
}

}  // namespace

std::vector<RlTask> read_prompt_tasks(const data::ChatTemplate& chat, const std::string& path,
                                      const std::vector<ProgramToolDeclaration>& named_tools) {
  check(path.size() > 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0, path,
        ": expected a .jsonl file (rl.prompts / rl.eval_prompts: one JSON object per line)");
  data::DocumentReader reader(path);  // line numbers, UTF-8 and JSON errors, blank lines skipped
  std::vector<RlTask> tasks;
  nlohmann::ordered_json record;
  while (reader.next_json(record)) {
    const std::string where = path + ":" + std::to_string(reader.line_number());
    check(record.is_object(), where, ": expected an object {\"messages\": [...], \"answer\": ...}, got ",
          record.type_name());
    const std::string answer = reference_answer(record, where);
    expand_named_tools(record, named_tools, where);
    data::ChatConversation conversation;
    try {
      conversation = data::parse_chat_record(record);
    } catch (const Error& e) {
      fail(where, ": ", e.what());
    }
    check(!conversation.messages.empty() && conversation.messages.back().role == data::ChatRole::user, where,
          ": the last message must be the user's (the turn the model answers)");
    const auto ids = chat.render_generation_prompt(conversation);
    tasks.push_back({conversation.messages.back().content, answer, {ids.begin(), ids.end()}, {}});
  }
  check(!tasks.empty(), path, ": no prompts (expected one JSON object per line)");
  return tasks;
}

JsonlPromptEnvironment::JsonlPromptEnvironment(const data::ChatTemplate& chat, const std::string& train_path,
                                               const std::string& eval_path,
                                               const std::vector<ProgramToolDeclaration>& named_tools)
    : train_(read_prompt_tasks(chat, train_path, named_tools)) {
  if (!eval_path.empty()) heldout_ = read_prompt_tasks(chat, eval_path, named_tools);
}

std::vector<RlTask> JsonlPromptEnvironment::train_tasks(int64_t count) const {
  std::vector<RlTask> tasks;
  tasks.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) tasks.push_back(train_[static_cast<size_t>(i) % train_.size()]);
  return tasks;
}

std::vector<RlTask> JsonlPromptEnvironment::heldout_tasks(int64_t count) const {
  const size_t n = std::min(heldout_.size(), static_cast<size_t>(std::max<int64_t>(count, 0)));
  return {heldout_.begin(), heldout_.begin() + static_cast<std::ptrdiff_t>(n)};
}

std::optional<std::string> JsonlPromptEnvironment::answer_in(const std::string& final_content) const {
  const std::string text = trimmed(final_content);
  const std::string prefix = "Answer: ";
  if (text.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  const std::string answer = trimmed(text.substr(prefix.size()));
  if (answer.empty()) return std::nullopt;
  return answer;
}

}  // namespace k2f::train::rl
