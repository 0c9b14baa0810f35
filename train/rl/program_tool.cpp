#include "train/rl/program_tool.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <sstream>

#include "base/error.h"
#include "base/json_io.h"
#include "train/rl/tools.h"

namespace k2f::train::rl {

namespace fs = std::filesystem;
using OrderedJson = nlohmann::ordered_json;

const char* const kToolPath = "/usr/local/bin:/usr/bin:/bin";

namespace {

const std::set<std::string>& json_schema_types() {
  static const std::set<std::string> types = {"string", "number", "integer", "boolean", "array", "object", "null"};
  return types;
}

// A JSON Schema (the subset function-calling uses): "type" a known type name or a list of them,
// "properties" an object of schemas, "items" a schema, "required" names of properties, "enum" a list.
void check_schema(const OrderedJson& schema, const std::string& where) {
  check(schema.is_object(), where, ": expected a JSON Schema object, got ", schema.type_name());
  if (schema.contains("type")) {
    const auto& type = schema["type"];
    std::vector<OrderedJson> names = type.is_array() ? std::vector<OrderedJson>(type.begin(), type.end())
                                                      : std::vector<OrderedJson>{type};
    for (const auto& name : names)
      check(name.is_string() && json_schema_types().count(name.get<std::string>()) == 1, where, ".type (",
            name.dump(), ") is not a JSON Schema type (string, number, integer, boolean, array, object, null)");
  }
  if (schema.contains("properties")) {
    check(schema["properties"].is_object(), where, ".properties must be an object of schemas");
    for (const auto& [key, value] : schema["properties"].items()) check_schema(value, where + ".properties." + key);
  }
  if (schema.contains("items")) check_schema(schema["items"], where + ".items");
  if (schema.contains("enum")) check(schema["enum"].is_array(), where, ".enum must be an array");
  if (schema.contains("required")) {
    check(schema["required"].is_array(), where, ".required must be an array of property names");
    for (const auto& name : schema["required"]) {
      check(name.is_string(), where, ".required holds ", name.dump(), " (expected a property name)");
      check(schema.contains("properties") && schema["properties"].contains(name.get<std::string>()), where,
            ".required names \"", name.get<std::string>(), "\", which is not in .properties");
    }
  }
}

bool is_executable_file(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && (info.st_mode & 0111) != 0;
}

// command[0] as an absolute path: relative to the declarations' directory, or found in kToolPath.
std::string resolve_program(const std::string& program, const fs::path& base, const std::string& where) {
  check(!program.empty(), where, ".command[0] is empty (expected the program that serves the tool)");
  std::string path;
  if (program.find('/') != std::string::npos) {
    path = fs::absolute(program[0] == '/' ? fs::path(program) : base / program).lexically_normal().string();
  } else {
    std::istringstream dirs(kToolPath);
    for (std::string dir; std::getline(dirs, dir, ':');)
      if (is_executable_file(dir + "/" + program)) {
        path = dir + "/" + program;
        break;
      }
    check(!path.empty(), where, ".command[0] (\"", program, "\"): not found in the tool PATH (", kToolPath, ")");
  }
  check(fs::exists(path), where, ".command[0]: ", path, ": no such file");
  check(is_executable_file(path), where, ".command[0]: ", path, ": not an executable file (chmod +x?)");
  return path;
}

ProgramToolDeclaration read_one(const OrderedJson& entry, const std::string& where, const fs::path& base) {
  check(entry.is_object(), where, ": expected an object {\"type\": \"function\", \"function\": {...}, \"command\": [...]}");
  check(entry.value("type", "") == "function", where, ".type must be \"function\"");
  check(entry.contains("function") && entry["function"].is_object(), where, ".function is missing (an object)");
  const auto& function = entry["function"];
  ProgramToolDeclaration tool;
  check(function.contains("name") && function["name"].is_string() && !function["name"].get<std::string>().empty(),
        where, ".function.name is missing (a non-empty string)");
  tool.name = function["name"].get<std::string>();
  for (const char c : tool.name)
    check(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-', where, ".function.name (\"", tool.name,
          "\") may hold only letters, digits, '_' and '-' (it becomes functions.NAME:INDEX)");
  const std::string at = where + " (" + tool.name + ")";
  if (function.contains("description")) {
    check(function["description"].is_string(), at, ".function.description must be a string");
    tool.description = function["description"].get<std::string>();
  }
  check(function.contains("parameters"), at, ".function.parameters is missing (a JSON Schema of type \"object\")");
  check_schema(function["parameters"], at + ".function.parameters");
  check(function["parameters"].value("type", "") == "object", at,
        ".function.parameters.type must be \"object\" (tool arguments are a JSON object)");
  tool.parameters = function["parameters"];
  check(entry.contains("command"), at, ": no \"command\" (expected the program that serves the tool and its arguments,"
                                       " e.g. [\"python3\", \"lookup.py\"])");
  check(entry["command"].is_array() && !entry["command"].empty(), at, ".command must be a non-empty array of strings");
  for (const auto& part : entry["command"]) {
    check(part.is_string(), at, ".command holds ", part.dump(), " (expected strings)");
    tool.command.push_back(part.get<std::string>());
  }
  tool.command[0] = resolve_program(tool.command[0], base, at);
  // The program runs in the episode's directory: an argument naming a file beside the
  // declarations (["python3", "lookup.py"]) is given as that file's absolute path.
  for (size_t i = 1; i < tool.command.size(); ++i) {
    const fs::path beside = base / tool.command[i];
    std::error_code ignored;
    if (!tool.command[i].empty() && tool.command[i][0] != '/' && tool.command[i][0] != '-' &&
        fs::is_regular_file(beside, ignored))
      tool.command[i] = beside.lexically_normal().string();
  }
  for (const auto& [key, value] : entry.items())
    check(key == "type" || key == "function" || key == "command", at, ": unknown field \"", key,
          "\" (expected type, function, command)");
  return tool;
}

}  // namespace

OrderedJson ProgramToolDeclaration::declaration() const {
  OrderedJson function;
  function["name"] = name;
  if (!description.empty()) function["description"] = description;
  function["parameters"] = parameters;
  OrderedJson entry;
  entry["type"] = "function";
  entry["function"] = function;
  return entry;
}

std::vector<ProgramToolDeclaration> read_tool_declarations(const std::string& path) {
  OrderedJson json;
  try {
    json = OrderedJson::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": not valid JSON (", e.what(), ")");
  }
  check(json.is_array() && !json.empty(), path, ": expected a non-empty array of tool declarations");
  const fs::path base = fs::absolute(path).parent_path();
  std::vector<ProgramToolDeclaration> tools;
  std::set<std::string> names;
  for (size_t i = 0; i < json.size(); ++i) {
    tools.push_back(read_one(json[i], path + ": tool " + std::to_string(i), base));
    check(names.insert(tools.back().name).second, path, ": tool \"", tools.back().name, "\" is declared twice");
  }
  return tools;
}

ToolSession::ToolSession(std::string root, SandboxLimits limits, double timeout_s)
    : root_(std::move(root)), limits_(std::move(limits)), timeout_s_(timeout_s) {}

ToolSession::~ToolSession() {
  running_.clear();  // kills every process before the directory goes
  if (!work_dir_.empty()) {
    std::error_code ignored;
    fs::remove_all(work_dir_, ignored);  // symlinks a tool made are removed, never followed
  }
}

const std::string& ToolSession::work_dir() {
  if (work_dir_.empty()) {
    static std::atomic<int64_t> counter{0};
    const fs::path dir = fs::path(root_) / ("episode-" + std::to_string(counter++));
    fs::create_directories(dir);
    work_dir_ = dir.string();
  }
  return work_dir_;
}

const SandboxIsolation& ToolSession::start(const ProgramToolDeclaration& tool) {
  auto& process = running_[tool.name];
  if (!process) {
    const std::vector<std::string> environment = {std::string("PATH=") + kToolPath, "HOME=" + work_dir(),
                                                  "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1"};
    process = std::make_unique<SandboxedProcess>(tool.command, environment, work_dir(), limits_);
  }
  return process->isolation();
}

ProgramToolAnswer ToolSession::call(const ProgramToolDeclaration& tool, const std::string& call_id,
                                    const nlohmann::json& arguments) {
  try {
    start(tool);
  } catch (const Error& e) {
    running_.erase(tool.name);
    return {e.what(), ToolEvent::crashed};
  }
  SandboxedProcess& process = *running_[tool.name];
  // Any failure below leaves the program out of step with the protocol: it is stopped, and the
  // episode's next call starts it again.
  auto stopped = [&](const std::string& why, ToolEvent event) {
    process.kill_all();
    running_.erase(tool.name);
    return ProgramToolAnswer{tool.name + " " + why, event};
  };
  auto crashed = [&](const std::string& what) {
    const std::string ended = process.how_it_ended();
    std::string tail = process.stderr_tail();
    if (tail.size() > 200) tail = "..." + tail.substr(tail.size() - 200);
    return stopped(what + (ended.empty() ? "" : " (" + ended + ")") + (tail.empty() ? "" : "; stderr: " + tail),
                   ToolEvent::crashed);
  };
  const nlohmann::json request = {{"id", call_id}, {"name", tool.name}, {"arguments", arguments}};
  if (!process.write_line(request.dump(), timeout_s_)) return crashed("stopped reading its calls");
  std::string line;
  switch (process.read_line(line, timeout_s_, kMaxToolAnswerBytes)) {
    case SandboxedProcess::Read::kTimeout:
      return stopped("timed out after " + std::to_string(timeout_s_) + " s (stopped)", ToolEvent::timeout);
    case SandboxedProcess::Read::kTooLong:
      return stopped("answered more than " + std::to_string(kMaxToolAnswerBytes) + " bytes in one line (stopped)",
                     ToolEvent::oversized);
    case SandboxedProcess::Read::kClosed: return crashed("ended without answering");
    case SandboxedProcess::Read::kLine: break;
  }
  nlohmann::json answer;
  try {
    answer = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception&) {
    answer = nullptr;
  }
  const bool has_content = answer.is_object() && answer.contains("content") && answer["content"].is_string();
  const bool has_error = answer.is_object() && answer.contains("error") && answer["error"].is_string();
  if (has_content == has_error) {
    return stopped("answered something other than {\"content\": \"...\"} or {\"error\": \"...\"}: " +
                       line.substr(0, 80),
                   ToolEvent::bad_answer);
  }
  if (has_error) return {answer["error"].get<std::string>(), ToolEvent::tool_error};
  return {answer["content"].get<std::string>(), ToolEvent::ok};
}

}  // namespace k2f::train::rl
