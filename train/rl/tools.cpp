#include "train/rl/tools.h"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "base/error.h"
#include "data/expression.h"

namespace k2f::train::rl {

std::string CalculatorTool::run(const nlohmann::json& arguments) const {
  check(arguments.contains("expression") && arguments["expression"].is_string(),
        "calculator needs {\"expression\": \"...\"}");
  return std::to_string(data::evaluate_expression(arguments["expression"].get<std::string>()));
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
  }
  return "?";
}

void ToolStats::add(ToolEvent event) {
  ++calls;
  ++events[tool_event_name(event)];
}

void ToolStats::merge(const ToolStats& other) {
  calls += other.calls;
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

void ToolRunner::add(std::shared_ptr<const Tool> tool) { tools_[tool->name()] = std::move(tool); }

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

ToolResult ToolRunner::run(const ToolCallText& call, int64_t index) const {
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
  const auto found = tools_.find(name);
  if (found == tools_.end()) {
    std::string known;
    for (const auto& [tool_name, tool] : tools_) known += (known.empty() ? "" : ", ") + tool_name;
    return result(id, header, "error: unknown tool \"" + name + "\" (available: " + known + ")", ToolEvent::unknown_tool);
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
  const int64_t size = static_cast<int64_t>(pending->text.size());
  if (size > limits_.max_output_chars) {
    return result(id, header, pending->text.substr(0, limits_.max_output_chars) + "\n[output cut: " +
                                  std::to_string(size) + " characters, limit " +
                                  std::to_string(limits_.max_output_chars) + "]", ToolEvent::oversized);
  }
  return result(id, header, pending->text, ToolEvent::ok);
}

ToolResult ToolRunner::refuse_over_limit(const ToolCallText& call, int64_t index, int64_t max_calls) const {
  const std::string name = tool_name_from_id(call.id);
  return result(name.empty() ? "functions.unknown:" + std::to_string(index) : call.id, name.empty() ? "tool" : name,
                "error: tool call limit (" + std::to_string(max_calls) + ") reached; answer now", ToolEvent::over_limit);
}

}  // namespace k2f::train::rl
