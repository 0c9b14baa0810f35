#include "data/arithmetic_task.h"

#include <fstream>
#include <random>
#include <set>

#include "base/error.h"
#include "data/expression.h"

namespace k2f::data {
namespace {

using OJson = nlohmann::ordered_json;

uint64_t fnv1a(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (const unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return h;
}

// mt19937_64's output is fixed by the standard (uniform_int_distribution's is not).
int64_t draw(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  return lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo + 1));
}

std::string make_expression(std::mt19937_64& rng) {
  const std::string a = std::to_string(draw(rng, 10, 99)), b = std::to_string(draw(rng, 10, 99));
  const std::string c = std::to_string(draw(rng, 2, 9));
  switch (draw(rng, 0, 3)) {
    case 0: return "(" + a + " + " + b + ") * " + c;
    case 1: return a + " * " + c + " + " + b;
    case 2: return a + " * " + c + " - " + b;
    default: return "(" + a + " - " + b + ") * " + c;
  }
}

// The steps a careful solver writes: innermost first.
std::string worked_steps(const std::string& expression) {
  // Shapes from make_expression: "(x op y) * c" or "x * c op y".
  std::string steps;
  if (expression[0] == '(') {
    const auto close = expression.find(')');
    const std::string inner = expression.substr(1, close - 1);
    const int64_t inner_value = evaluate_expression(inner);
    const std::string rest = std::to_string(inner_value) + expression.substr(close + 1);
    steps = inner + " = " + std::to_string(inner_value) + ". " + rest + " = " + std::to_string(evaluate_expression(rest)) + ".";
  } else {
    const auto op = expression.find_first_of("+-", expression.find('*'));
    const std::string product = expression.substr(0, op - 1);
    const int64_t product_value = evaluate_expression(product);
    const std::string rest = std::to_string(product_value) + " " + expression.substr(op);
    steps = product + " = " + std::to_string(product_value) + ". " + rest + " = " +
            std::to_string(evaluate_expression(rest)) + ".";
  }
  return steps;
}

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

}  // namespace

std::string ArithmeticProblem::question() const { return "Compute " + expression + "."; }

bool is_heldout(const std::string& expression) { return fnv1a(expression) % 8 == 0; }

std::vector<ArithmeticProblem> make_arithmetic_problems(uint64_t seed, int64_t count, TaskSplit split) {
  check(count >= 0, "problem count (", count, ") must be >= 0");
  std::mt19937_64 rng(seed ^ 0x9E3779B97F4A7C15ull);
  std::set<std::string> seen;
  std::vector<ArithmeticProblem> problems;
  while (static_cast<int64_t>(problems.size()) < count) {
    const std::string expression = make_expression(rng);
    if (is_heldout(expression) != (split == TaskSplit::heldout) || !seen.insert(expression).second) continue;
    problems.push_back({expression, evaluate_expression(expression)});
  }
  return problems;
}

std::optional<int64_t> extract_answer(const std::string& content) {
  const std::string text = trim(content);
  const std::string prefix = "Answer: ";
  if (text.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  const std::string number = text.substr(prefix.size());
  size_t i = number.size() > 0 && number[0] == '-' ? 1 : 0;
  if (i == number.size() || number.size() > 18) return std::nullopt;
  for (; i < number.size(); ++i)
    if (number[i] < '0' || number[i] > '9') return std::nullopt;
  return std::stoll(number);
}

bool answer_is_correct(const std::string& content, const ArithmeticProblem& problem) {
  const auto answer = extract_answer(content);
  return answer && *answer == problem.answer;
}

OJson calculator_tools_json() {
  return OJson::array({{{"type", "function"},
                        {"function",
                         {{"name", "calculator"},
                          {"description", "Exact integer arithmetic."},
                          {"parameters",
                           {{"type", "object"},
                            {"properties", {{"expression", {{"type", "string"}}}}},
                            {"required", {"expression"}}}}}}}});
}

OJson make_think_conversation(const ArithmeticProblem& problem, bool use_tool) {
  const std::string answer = "Answer: " + std::to_string(problem.answer);
  OJson messages = OJson::array();
  messages.push_back({{"role", "user"}, {"content", problem.question()}});
  if (!use_tool) {
    messages.push_back({{"role", "assistant"}, {"reasoning_content", worked_steps(problem.expression)}, {"content", answer}});
  } else {
    const std::string id = "functions.calculator:0";
    const std::string arguments = OJson{{"expression", problem.expression}}.dump();
    messages.push_back({{"role", "assistant"},
                        {"reasoning_content", "I will use the calculator."},
                        {"content", ""},
                        {"tool_calls",
                         OJson::array({{{"id", id},
                                        {"type", "function"},
                                        {"function", {{"name", "calculator"}, {"arguments", arguments}}}}})}});
    messages.push_back({{"role", "tool"}, {"tool_call_id", id}, {"name", "calculator"},
                        {"content", std::to_string(problem.answer)}});
    messages.push_back({{"role", "assistant"},
                        {"reasoning_content", "The calculator returned " + std::to_string(problem.answer) + "."},
                        {"content", answer}});
  }
  return {{"tools", calculator_tools_json()}, {"messages", messages}};
}

void ThinkSynthOptions::validate() const {
  check(!out.empty(), "--out: missing output path");
  check(count > 0, "--count (", count, ") must be positive");
  check(tool_fraction >= 0 && tool_fraction <= 1, "--tool-fraction (", tool_fraction, ") must be in [0, 1]");
}

int64_t write_think_jsonl(const ThinkSynthOptions& options) {
  options.validate();
  std::ofstream out(options.out);
  check(out.good(), options.out, ": cannot open for writing");
  std::mt19937_64 coin(options.seed + 1);
  int64_t with_tool = 0;
  for (const auto& problem : make_arithmetic_problems(options.seed, options.count, TaskSplit::train)) {
    const bool use_tool = static_cast<double>(coin() >> 11) * 0x1.0p-53 < options.tool_fraction;
    with_tool += use_tool ? 1 : 0;
    out << make_think_conversation(problem, use_tool).dump() << "\n";
  }
  check(out.good(), options.out, ": write failed");
  return with_tool;
}

}  // namespace k2f::data
