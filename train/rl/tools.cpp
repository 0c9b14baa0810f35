#include "train/rl/tools.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>

#include "base/error.h"
#include "data/expression.h"
#include "data/key_chain_task.h"

namespace k2f::train::rl {

std::string CalculatorTool::run(const nlohmann::json& arguments) const {
  check(arguments.contains("expression") && arguments["expression"].is_string(),
        "calculator needs {\"expression\": \"...\"}");
  return std::to_string(data::evaluate_expression(arguments["expression"].get<std::string>()));
}

std::string LookupTool::run(const nlohmann::json& arguments) const {
  check(arguments.contains("key") && arguments["key"].is_string(), "lookup needs {\"key\": \"...\"}");
  const std::string key = arguments["key"].get<std::string>();
  const auto entry = data::look_up_key(key);
  check(entry.has_value(), "no such key: ", key);
  return *entry;
}

const char* tool_event_name(ToolEvent event) {
  switch (event) {
    case ToolEvent::ok: return "ok";
    case ToolEvent::malformed: return "malformed";
    case ToolEvent::unknown_tool: return "unknown_tool";
    case ToolEvent::tool_error: return "tool_error";
    case ToolEvent::timeout: return "timeout";
    case ToolEvent::oversized: return "oversized";
    case ToolEvent::over_limit: return "over_limit";
    case ToolEvent::crashed: return "crashed";
    case ToolEvent::bad_answer: return "bad_answer";
  }
  return "?";
}

void ToolStats::add(ToolEvent event) {
  ++calls;
  ++events[tool_event_name(event)];
}

void ToolStats::merge(const ToolStats& other) {
  calls += other.calls;
  seconds += other.seconds;
  for (const auto& [name, n] : other.events) events[name] += n;
}

int64_t ToolStats::count(ToolEvent event) const {
  const auto it = events.find(tool_event_name(event));
  return it == events.end() ? 0 : it->second;
}

void ToolLimits::validate(const std::string& prefix) const {
  check(timeout_s > 0, prefix, ".tool_timeout_s (", timeout_s, ") must be > 0");
  check(max_output_chars > 0, prefix, ".tool_max_output_chars (", max_output_chars, ") must be > 0");
  check(max_argument_chars > 0, prefix, ".tool_max_argument_chars (", max_argument_chars, ") must be > 0");
  sandbox.validate(prefix);
}

std::string tool_name_from_id(const std::string& id) {
  const std::string prefix = "functions.";
  const auto colon = id.rfind(':');
  if (id.compare(0, prefix.size(), prefix) != 0 || colon == std::string::npos || colon <= prefix.size()) return "";
  for (size_t i = colon + 1; i < id.size(); ++i)
    if (id[i] < '0' || id[i] > '9') return "";
  if (colon + 1 == id.size()) return "";
  return id.substr(prefix.size(), colon - prefix.size());
}

ToolRunner::ToolRunner(ToolLimits limits) : limits_(limits) { limits_.validate(); }

ToolRunner::ToolRunner(ToolRunner&& other) noexcept
    : limits_(std::move(other.limits_)),
      tools_(std::move(other.tools_)),
      programs_(std::move(other.programs_)),
      work_root_(std::exchange(other.work_root_, std::string())) {}

ToolRunner::~ToolRunner() {
  if (!work_root_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(work_root_, ignored);
  }
}

void ToolRunner::add(std::shared_ptr<const Tool> tool) { tools_[tool->name()] = std::move(tool); }

void ToolRunner::add_program(ProgramToolDeclaration tool) {
  if (work_root_.empty()) {
    namespace fs = std::filesystem;
    static std::atomic<int> counter{0};
    const fs::path parent = limits_.work_root.empty() ? fs::temp_directory_path() : fs::path(limits_.work_root);
    const fs::path root = parent / ("k2forge-tools-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(root);
    fs::create_directories(root);
    // Searchable, not listable, by the sandbox user: it reaches its own episode directory only.
    fs::permissions(root, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    work_root_ = root.string();
  }
  tools_.erase(tool.name);
  for (auto& existing : programs_)
    if (existing.name == tool.name) {
      existing = std::move(tool);
      return;
    }
  programs_.push_back(std::move(tool));
}

std::string ToolRunner::check_programs_start() const {
  std::string described;
  for (const auto& tool : programs_) {
    const auto session = open_session();
    described = session->start(tool).describe();
  }
  return described;
}

std::unique_ptr<ToolSession> ToolRunner::open_session() const {
  return std::make_unique<ToolSession>(work_root_, limits_.sandbox, limits_.timeout_s);
}

std::string ToolRunner::known_names() const {
  std::string known;
  for (const auto& [tool_name, tool] : tools_) known += (known.empty() ? "" : ", ") + tool_name;
  for (const auto& tool : programs_) known += (known.empty() ? "" : ", ") + tool.name;
  return known;
}

namespace {

// Shared between the caller and a worker that may outlive it after a timeout.
struct Pending {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  bool failed = false;
  std::string text;
};

ToolResult result(std::string id, std::string name, std::string content, ToolEvent event) {
  return {std::move(id), std::move(name), std::move(content), event};
}

}  // namespace

ToolResult ToolRunner::run(const ToolCallText& call, int64_t index, ToolSession* session) const {
  const std::string name = tool_name_from_id(call.id);
  const std::string id = name.empty() ? "functions.unknown:" + std::to_string(index) : call.id;
  const std::string header = name.empty() ? "tool" : name;
  if (!call.problem.empty()) return result(id, header, "error: malformed tool call: " + call.problem, ToolEvent::malformed);
  if (name.empty()) {
    return result(id, header, "error: malformed tool call id \"" + call.id.substr(0, 64) +
                                  "\" (expected functions.NAME:INDEX)", ToolEvent::malformed);
  }
  if (static_cast<int64_t>(call.arguments.size()) > limits_.max_argument_chars) {
    return result(id, header, "error: arguments longer than " + std::to_string(limits_.max_argument_chars) +
                                  " characters", ToolEvent::malformed);
  }
  nlohmann::json arguments;
  try {
    arguments = nlohmann::json::parse(call.arguments);
  } catch (const nlohmann::json::exception&) {
    return result(id, header, "error: arguments are not valid JSON", ToolEvent::malformed);
  }
  if (!arguments.is_object()) return result(id, header, "error: arguments must be a JSON object", ToolEvent::malformed);
  for (const auto& program : programs_) {
    if (program.name != name) continue;
    std::unique_ptr<ToolSession> throwaway = session ? nullptr : open_session();
    const ProgramToolAnswer answer = (session ? *session : *throwaway).call(program, id, arguments);
    return cut_to_limit(id, header, answer.event == ToolEvent::ok ? answer.text : "error: " + answer.text,
                        answer.event);
  }
  const auto found = tools_.find(name);
  if (found == tools_.end()) {
    return result(id, header, "error: unknown tool \"" + name + "\" (available: " + known_names() + ")",
                  ToolEvent::unknown_tool);
  }

  auto pending = std::make_shared<Pending>();
  std::thread worker([pending, tool = found->second, arguments] {
    std::string text;
    bool failed = false;
    try {
      text = tool->run(arguments);
    } catch (const std::exception& e) {
      text = e.what();
      failed = true;
    }
    std::lock_guard<std::mutex> lock(pending->mutex);
    pending->text = std::move(text);
    pending->failed = failed;
    pending->done = true;
    pending->done_cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(pending->mutex);
  const bool finished = pending->done_cv.wait_for(lock, std::chrono::duration<double>(limits_.timeout_s),
                                                  [&] { return pending->done; });
  if (!finished) {
    lock.unlock();
    worker.detach();  // it owns `pending` and the tool; its late result is dropped
    return result(id, header, "error: " + name + " timed out after " + std::to_string(limits_.timeout_s) + " s",
                  ToolEvent::timeout);
  }
  lock.unlock();
  worker.join();
  if (pending->failed) return result(id, header, "error: " + pending->text, ToolEvent::tool_error);
  return cut_to_limit(id, header, pending->text, ToolEvent::ok);
}

ToolResult ToolRunner::cut_to_limit(std::string id, std::string header, const std::string& text, ToolEvent event) const {
  const int64_t size = static_cast<int64_t>(text.size());
  if (size <= limits_.max_output_chars) return result(std::move(id), std::move(header), text, event);
  return result(std::move(id), std::move(header),
                text.substr(0, limits_.max_output_chars) + "\n[output cut: " + std::to_string(size) +
                    " characters, limit " + std::to_string(limits_.max_output_chars) + "]",
                event == ToolEvent::ok ? ToolEvent::oversized : event);
}

ToolResult ToolRunner::refuse_over_limit(const ToolCallText& call, int64_t index, int64_t max_calls) const {
  const std::string name = tool_name_from_id(call.id);
  return result(name.empty() ? "functions.unknown:" + std::to_string(index) : call.id, name.empty() ? "tool" : name,
                "error: tool call limit (" + std::to_string(max_calls) + ") reached; answer now", ToolEvent::over_limit);
}

}  // namespace k2f::train::rl
