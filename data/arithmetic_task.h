// The embedded verifiable reasoning task (issue 7): seeded multi-step integer arithmetic problems
// with exact answers, the answer checker, and SFT conversations in the K2 chat format. A
// conversation either thinks the steps through itself or calls the calculator tool and reads its
// "## Return of" result; `tool_fraction` sets the mix. The held-out split is a function of the
// problem text (a hash), so no generator seed can leak an evaluation problem into training.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace k2f::data {

struct ArithmeticProblem {
  std::string expression;  // "(17 + 5) * 3"
  int64_t answer = 0;      // exact, from evaluate_expression
  std::string question() const;  // the user message: "Compute (17 + 5) * 3."
};

enum class TaskSplit { train, heldout };

// `count` distinct problems of `split`, drawn in order from a stream seeded by `seed`.
std::vector<ArithmeticProblem> make_arithmetic_problems(uint64_t seed, int64_t count, TaskSplit split);
bool is_heldout(const std::string& expression);

// "Answer: N" (the whole final content, spaces around trimmed); nullopt when it is not that form.
std::optional<int64_t> extract_answer(const std::string& content);
bool answer_is_correct(const std::string& content, const ArithmeticProblem& problem);

// The calculator's OpenAI-style declaration ([{"type": "function", "function": {...}}]).
nlohmann::ordered_json calculator_tools_json();

// One SFT record {"tools": [...], "messages": [...]}: user question, then either a thinking turn
// with the steps and the answer, or a thinking turn that calls the calculator, the tool result and
// a final turn reading it.
nlohmann::ordered_json make_think_conversation(const ArithmeticProblem& problem, bool use_tool);

struct ThinkSynthOptions {
  std::string out;            // JSONL path
  int64_t count = 1000;       // conversations
  uint64_t seed = 0;
  double tool_fraction = 0.5; // share of conversations that call the calculator
  void validate() const;
};
// Writes `count` train-split conversations; returns how many call the tool.
int64_t write_think_jsonl(const ThinkSynthOptions& options);

}  // namespace k2f::data
