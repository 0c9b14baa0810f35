// Helpers shared by the tests: scratch directories, running the k2forge binary, and checking
// that a callable throws a k2f::Error whose message contains given fragments.
#pragma once

#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

#include "base/error.h"

namespace k2f::testing {

// A fresh directory under the system temp dir, removed when the object dies.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag) {
    path_ = std::filesystem::temp_directory_path() /
            ("k2f-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  static int& counter() {
    static int value = 0;
    return value;
  }
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

// Runs a shell command; `output` holds stdout, plus stderr when `with_stderr`.
inline CommandResult run_command(const std::string& command, bool with_stderr = true) {
  CommandResult result;
  FILE* pipe = ::popen((command + (with_stderr ? " 2>&1" : " 2>/dev/null")).c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// Expects `body` to throw k2f::Error mentioning every fragment.
template <typename Body>
void expect_error(Body&& body, std::initializer_list<std::string> fragments) {
  try {
    body();
    ADD_FAILURE() << "expected a k2f::Error";
  } catch (const k2f::Error& e) {
    const std::string message = e.what();
    for (const auto& fragment : fragments) {
      EXPECT_NE(message.find(fragment), std::string::npos) << "message \"" << message << "\" lacks \"" << fragment << "\"";
    }
  }
}

// `command` as a child process (exec'd by sh, so signals sent to the pid reach the program itself),
// its stdout and stderr to `log`.
inline pid_t spawn_command(const std::string& command, const std::string& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const std::string line = "exec " + command + " > " + log + " 2>&1";
    ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// The child's exit code (128 + N when a signal N killed it); -1 after `seconds` (it is then killed).
inline int wait_for_exit(pid_t pid, int seconds) {
  for (int waited_ms = 0; waited_ms < seconds * 1000; waited_ms += 10) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    ::usleep(10000);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return -1;
}

// Waits until `<run_dir>/metrics.jsonl` has `steps` lines; false after `seconds`.
inline bool wait_for_logged_steps(const std::string& run_dir, size_t steps, int seconds = 120) {
  for (int waited_ms = 0; waited_ms < seconds * 1000; waited_ms += 10) {
    std::ifstream in(run_dir + "/metrics.jsonl");
    size_t lines = 0;
    for (std::string line; std::getline(in, line);) ++lines;
    if (lines >= steps) return true;
    ::usleep(10000);
  }
  return false;
}

}  // namespace k2f::testing
