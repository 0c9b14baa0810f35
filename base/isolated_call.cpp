// Fork, run, report through a pipe, wait with a deadline (see isolated_call.h for why).
#include "base/isolated_call.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>

#include "base/error.h"

namespace k2f {
namespace {

IsolatedChildHook child_hook = nullptr;

// The child's report: one status byte, then the exception's message for kFailed.
constexpr char kCompletedByte = 'C';
constexpr char kFailedByte = 'F';

void write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t written = ::write(fd, data, size);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return;
    data += written;
    size -= static_cast<size_t>(written);
  }
}

[[noreturn]] void run_child(const std::function<void()>& body, int report_fd) {
  if (child_hook != nullptr) child_hook();
  std::string report(1, kCompletedByte);
  try {
    body();
  } catch (const std::exception& e) {
    report = std::string(1, kFailedByte) + e.what();
  } catch (...) {
    report = std::string(1, kFailedByte) + "unknown exception";
  }
  write_all(report_fd, report.data(), report.size());
  ::_exit(0);
}

// Reads the child's report until it closes the pipe or the deadline passes; false on timeout.
bool read_report(int fd, std::chrono::steady_clock::time_point deadline, std::string* report) {
  char buffer[4096];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd poll_fd{fd, POLLIN, 0};
    const int ready = ::poll(&poll_fd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    check(ready >= 0, "isolated call: poll failed: ", std::strerror(errno));
    if (ready == 0) continue;
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return true;  // end of file (or an error): the child is done
    report->append(buffer, static_cast<size_t>(got));
  }
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status))
    return "signal " + std::to_string(WTERMSIG(status)) + " (" + ::strsignal(WTERMSIG(status)) + ")";
  return "exit status " + std::to_string(WEXITSTATUS(status));
}

int wait_for_child(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    check(errno == EINTR, "isolated call: waitpid failed: ", std::strerror(errno));
  }
  return status;
}

}  // namespace

void set_isolated_child_hook(IsolatedChildHook hook) { child_hook = hook; }

IsolatedOutcome run_isolated(const std::function<void()>& body, double timeout_seconds) {
  // Close-on-exec: a process another thread spawns meanwhile must not hold the write end open.
  int fds[2];
  check(::pipe2(fds, O_CLOEXEC) == 0, "isolated call: cannot create a pipe: ", std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int error = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    fail("isolated call: fork failed: ", std::strerror(error));
  }
  if (pid == 0) {
    ::close(fds[0]);
    run_child(body, fds[1]);
  }
  ::close(fds[1]);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(timeout_seconds));
  std::string report;
  const bool finished = read_report(fds[0], deadline, &report);
  ::close(fds[0]);
  IsolatedOutcome outcome;
  if (!finished) {
    ::kill(pid, SIGKILL);
    wait_for_child(pid);
    outcome.kind = IsolatedOutcome::Kind::kTimedOut;
    return outcome;
  }
  const int status = wait_for_child(pid);
  const bool exited_cleanly = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (exited_cleanly && !report.empty() && report[0] == kCompletedByte) {
    outcome.kind = IsolatedOutcome::Kind::kCompleted;
  } else if (exited_cleanly && !report.empty() && report[0] == kFailedByte) {
    outcome.kind = IsolatedOutcome::Kind::kFailed;
    outcome.message = report.substr(1);
  } else {
    outcome.kind = IsolatedOutcome::Kind::kCrashed;
    outcome.description = describe_status(status);
  }
  return outcome;
}

}  // namespace k2f
