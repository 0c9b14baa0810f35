// Tools the model may call during RL and generation, and the runner that executes one call under
// limits. Every way a call can go wrong (malformed call, arguments that are not a JSON object,
// unknown tool, the tool's own error, timeout, oversized output, too many calls) becomes a tool
// message the model reads, never an exception: the episode continues and the event is counted,
// because a policy has to learn from its bad calls. Built-in tools run in-process on a worker
// thread, so a hung one costs at most the timeout; the user's tools are programs run in a sandbox
// per episode (program_tool.h), killed with all they started when they time out or the episode ends.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/sandbox.h"
#include "train/rl/program_tool.h"

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

// {"key": "4173052"} -> the next key, or "done VVVV" (data::look_up_key, the key-chain task).
class LookupTool : public Tool {
 public:
  std::string name() const override { return "lookup"; }
  std::string run(const nlohmann::json& arguments) const override;
};

// crashed: a tool program could not start or ended without answering; bad_answer: it answered
// something other than the protocol's {"content"} or {"error"} object.
enum class ToolEvent { ok, malformed, unknown_tool, tool_error, timeout, oversized, over_limit, crashed, bad_answer };
const char* tool_event_name(ToolEvent event);

struct ToolStats {
  int64_t calls = 0;  // every call the model made, well-formed or not
  double seconds = 0;  // wall time spent answering them (tool programs included)
  std::map<std::string, int64_t> events;  // tool_event_name -> count (ok included)
  void add(ToolEvent event);
  void merge(const ToolStats& other);
  int64_t count(ToolEvent event) const;
};

struct ToolLimits {
  double timeout_s = 2.0;           // wall time one call may take
  int64_t max_output_chars = 256;   // longer results are cut to this and flagged
  int64_t max_argument_chars = 1024;
  SandboxLimits sandbox;            // what a tool program may use
  std::string work_root;            // where episodes' working directories go ("": the temp directory)
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
  ~ToolRunner();  // removes the directory the episodes' working directories were made in
  ToolRunner(ToolRunner&& other) noexcept;  // the directory goes with the moved-to runner
  ToolRunner(const ToolRunner&) = delete;
  ToolRunner& operator=(const ToolRunner&) = delete;
  void add(std::shared_ptr<const Tool> tool);
  // A user's tool; replaces a built-in tool of the same name.
  void add_program(ProgramToolDeclaration tool);
  bool has_programs() const { return !programs_.empty(); }
  const std::vector<ProgramToolDeclaration>& programs() const { return programs_; }
  // Starts every program once (before a run, so a program that cannot start fails it there) and
  // says what the sandbox enforces; "" without programs.
  std::string check_programs_start() const;
  // The working directory and tool processes of one episode.
  std::unique_ptr<ToolSession> open_session() const;
  // Parses and runs one call; `index` is the call's 0-based index in the episode (for ids).
  // Program tools run in `session` (a throwaway one when null).
  ToolResult run(const ToolCallText& call, int64_t index, ToolSession* session = nullptr) const;
  // The message for a call that exceeds the episode's call budget (not run).
  ToolResult refuse_over_limit(const ToolCallText& call, int64_t index, int64_t max_calls) const;
  const ToolLimits& limits() const { return limits_; }

 private:
  std::string known_names() const;
  // `text` cut to limits_.max_output_chars (an ok result that is cut becomes oversized).
  ToolResult cut_to_limit(std::string id, std::string header, const std::string& text, ToolEvent event) const;
  ToolLimits limits_;
  std::map<std::string, std::shared_ptr<const Tool>> tools_;
  std::vector<ProgramToolDeclaration> programs_;
  std::string work_root_;  // made with the first program
};

// "functions.calculator:3" -> "calculator"; "" when the id is not of that form.
std::string tool_name_from_id(const std::string& id);

}  // namespace k2f::train::rl
