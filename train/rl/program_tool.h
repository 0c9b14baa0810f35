// Tools the user supplies: a declaration (name, description, JSON-Schema parameters, as K2's chat
// template renders them) and the program that serves it. The program reads one JSON call per line
// on stdin and answers one JSON object per line on stdout:
//   -> {"id": "functions.lookup:3", "name": "lookup", "arguments": {...}}
//   <- {"content": "..."}    or    <- {"error": "..."}
// It is started in a sandbox (base/sandbox.h) at its first call of an episode, in that episode's
// fresh working directory, and killed with everything it started when the episode ends. A call
// that times out, an answer that is too long or not of that form, or a program that dies, becomes a
// tool message and an event; the program is then restarted at the episode's next call.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/sandbox.h"

namespace k2f::train::rl {

enum class ToolEvent;

struct ProgramToolDeclaration {
  std::string name;
  std::string description;
  nlohmann::ordered_json parameters;  // a JSON Schema of type "object"
  std::vector<std::string> command;   // command[0]: an absolute path to an executable file
  // {"type": "function", "function": {"name", "description", "parameters"}}, as prompts declare it.
  nlohmann::ordered_json declaration() const;
};

// The tools of a JSON file: an array of OpenAI-style declarations, each with a "command" (a
// program and its arguments; a relative program path is taken from the file's directory, a bare
// name is searched in the sandbox PATH, and an argument naming a file beside the declarations
// becomes its absolute path). Errors name the file, the tool and the field.
std::vector<ProgramToolDeclaration> read_tool_declarations(const std::string& path);

// The PATH every tool program sees (a fixed, system-wide one: no directory only root may read).
extern const char* const kToolPath;

struct ProgramToolAnswer {
  std::string text;
  ToolEvent event;
};

// The tool processes and working directory of one episode.
class ToolSession {
 public:
  // `root`: an existing directory the episode's own directory is made in.
  ToolSession(std::string root, SandboxLimits limits, double timeout_s);
  ~ToolSession();  // kills every tool process, removes the working directory
  ToolSession(const ToolSession&) = delete;
  ToolSession& operator=(const ToolSession&) = delete;

  ProgramToolAnswer call(const ProgramToolDeclaration& tool, const std::string& call_id,
                         const nlohmann::json& arguments);
  // Starts the tool's program (if not running) and returns what the sandbox could enforce.
  const SandboxIsolation& start(const ProgramToolDeclaration& tool);
  const std::string& work_dir();  // made at first use

 private:
  std::string root_, work_dir_;
  SandboxLimits limits_;
  double timeout_s_;
  std::map<std::string, std::unique_ptr<SandboxedProcess>> running_;
};

// The longest answer line a tool may write (larger ones: the program is stopped, "oversized").
constexpr size_t kMaxToolAnswerBytes = 1 << 20;

}  // namespace k2f::train::rl
