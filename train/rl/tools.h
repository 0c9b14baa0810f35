// Tools the model may call during RL and generation, and the runner that executes one call under
// limits. Every way a call can go wrong (malformed call, arguments that are not a JSON object,
// unknown tool, the tool's own error, timeout, oversized output, too many calls) becomes a tool
// message the model reads, never an exception: the episode continues and the event is counted,
// because a policy has to learn from its bad calls. Tools run on a worker thread so a hung tool
// costs at most the timeout (the thread is then abandoned, owning what it uses).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace k2f::train::rl {

class Tool {
 public:
  virtual ~Tool() = default;
  virtual std::string name() const = 0;
  // The result text; throws (k2f::Error or any std::exception) for a tool error, whose message the
  // model then sees.
  virtual std::string run(const nlohmann::json& arguments) const = 0;
};

// {"expression": "(17 + 5) * 3"} -> "66", exact (data::evaluate_expression).
class CalculatorTool : public Tool {
 public:
  std::string name() const override { return "calculator"; }
  std::string run(const nlohmann::json& arguments) const override;
};

enum class ToolEvent { ok, malformed, unknown_tool, tool_error, timeout, oversized, over_limit };
const char* tool_event_name(ToolEvent event);

struct ToolStats {
  int64_t calls = 0;  // every call the model made, well-formed or not
  std::map<std::string, int64_t> events;  // tool_event_name -> count (ok included)
  void add(ToolEvent event);
  void merge(const ToolStats& other);
  int64_t count(ToolEvent event) const;
};

struct ToolLimits {
  double timeout_s = 2.0;           // wall time one call may take
  int64_t max_output_chars = 256;   // longer results are cut to this and flagged
  int64_t max_argument_chars = 1024;
  void validate(const std::string& prefix = "rl") const;
};

// One call as the model wrote it: the id ("functions.NAME:IDX") and the argument text. `problem`
// is non-empty when the call's token structure was broken (then name and arguments may be empty).
struct ToolCallText {
  std::string id;
  std::string arguments;
  std::string problem;
};

struct ToolResult {
  std::string call_id;    // the id the tool message answers ("functions.unknown:K" when unreadable)
  std::string tool_name;  // the tool message's name ("tool" when unknown)
  std::string content;
  ToolEvent event = ToolEvent::ok;
};

class ToolRunner {
 public:
  explicit ToolRunner(ToolLimits limits = {});
  void add(std::shared_ptr<const Tool> tool);
  // Parses and runs one call; `index` is the call's 0-based index in the episode (for ids).
  ToolResult run(const ToolCallText& call, int64_t index) const;
  // The message for a call that exceeds the episode's call budget (not run).
  ToolResult refuse_over_limit(const ToolCallText& call, int64_t index, int64_t max_calls) const;
  const ToolLimits& limits() const { return limits_; }

 private:
  ToolLimits limits_;
  std::map<std::string, std::shared_ptr<const Tool>> tools_;
};

// "functions.calculator:3" -> "calculator"; "" when the id is not of that form.
std::string tool_name_from_id(const std::string& id);

}  // namespace k2f::train::rl
