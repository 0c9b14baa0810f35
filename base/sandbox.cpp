#include "base/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <map>

#include "base/error.h"

namespace k2f {
namespace {

// Landlock's ABI (linux/landlock.h), spelled out: Debian 12's headers predate the network rules.
constexpr uint64_t kFsWriteFile = 1ull << 1, kFsRemoveDir = 1ull << 4, kFsRemoveFile = 1ull << 5,
                   kFsMakeFirst = 1ull << 6, kFsMakeLast = 1ull << 12, kFsRefer = 1ull << 13, kFsTruncate = 1ull << 14;
constexpr uint64_t kNetBindTcp = 1ull << 0, kNetConnectTcp = 1ull << 1;
constexpr int kRulePathBeneath = 1;
constexpr uint32_t kCreateRulesetVersion = 1u << 0;
struct LandlockRulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
};
struct __attribute__((packed)) LandlockPathBeneathAttr {
  uint64_t allowed_access;
  int32_t parent_fd;
};
constexpr long kSysCreateRuleset = 444, kSysAddRule = 445, kSysRestrictSelf = 446;  // one numbering on every arch

// What the tool child reports through its close-on-exec pipe: a flags byte before exec, then
// (only when something failed) the stage and errno.
enum Stage : char { kStageChdir, kStageUser, kStageLimits, kStageExec, kStageFork };
const char* stage_name(char stage) {
  switch (stage) {
    case kStageChdir: return "entering its working directory";
    case kStageUser: return "switching to the sandbox user";
    case kStageLimits: return "setting its limits";
    case kStageExec: return "exec";
    case kStageFork: return "fork";
  }
  return "?";
}
constexpr char kFlagLandlockWrites = 1, kFlagLandlockNetwork = 2, kFlagDropped = 4;

struct Prepared {  // everything the children need, made before fork (they may only make syscalls)
  std::vector<char*> argv, envp;
  const char* work_dir;
  bool drop = false;
  uid_t uid = 0;
  gid_t gid = 0;
  const SandboxLimits* limits;
  pid_t parent;
  int in_child, out_child, err_child, status_write, report_write;
};

void write_all(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    size -= static_cast<size_t>(n);
  }
}

[[noreturn]] void report_failure(int fd, char stage) {
  const int error = errno;
  write_all(fd, &stage, 1);
  write_all(fd, &error, sizeof error);
  ::_exit(127);
}

// Writes confined to the working directory (and /dev/null); TCP refused when `deny_tcp`.
char apply_landlock(const char* work_dir, bool deny_tcp) {
  const long abi = ::syscall(kSysCreateRuleset, nullptr, 0, kCreateRulesetVersion);
  if (abi < 1) return 0;
  uint64_t writes = kFsWriteFile | kFsRemoveDir | kFsRemoveFile;
  for (uint64_t bit = kFsMakeFirst; bit <= kFsMakeLast; bit <<= 1) writes |= bit;
  if (abi >= 2) writes |= kFsRefer;
  if (abi >= 3) writes |= kFsTruncate;
  LandlockRulesetAttr attr{writes, deny_tcp && abi >= 4 ? (kNetBindTcp | kNetConnectTcp) : 0};
  const size_t attr_size = abi >= 4 ? sizeof attr : sizeof attr.handled_access_fs;
  const int ruleset = static_cast<int>(::syscall(kSysCreateRuleset, &attr, attr_size, 0));
  if (ruleset < 0) return 0;
  const int dir = ::open(work_dir, O_PATH | O_CLOEXEC);
  LandlockPathBeneathAttr in_dir{writes, dir};
  if (dir < 0 || ::syscall(kSysAddRule, ruleset, kRulePathBeneath, &in_dir, 0) != 0) return 0;
  const int null_device = ::open("/dev/null", O_PATH | O_CLOEXEC);
  LandlockPathBeneathAttr to_null{kFsWriteFile | (abi >= 3 ? kFsTruncate : 0), null_device};
  if (null_device >= 0) ::syscall(kSysAddRule, ruleset, kRulePathBeneath, &to_null, 0);
  if (::syscall(kSysRestrictSelf, ruleset, 0) != 0) return 0;
  return static_cast<char>(kFlagLandlockWrites | (attr.handled_access_net != 0 ? kFlagLandlockNetwork : 0));
}

void set_limit(int resource, rlim_t soft, rlim_t hard, int report_fd) {
  const rlimit limit{soft, hard};
  if (::setrlimit(resource, &limit) != 0) report_failure(report_fd, kStageLimits);
}

void reset_signals() {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) ::sigaction(s, &default_action, nullptr);
}

[[noreturn]] void run_tool(const Prepared& p, bool network_namespace) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::dup2(p.in_child, 0);
  ::dup2(p.out_child, 1);
  ::dup2(p.err_child, 2);
  if (::syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */) != 0)
    for (int fd = 3; fd < 4096; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  reset_signals();
  if (::chdir(p.work_dir) != 0) report_failure(p.report_write, kStageChdir);
  char flags = 0;
  if (p.drop) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(p.gid) != 0 || ::setuid(p.uid) != 0)
      report_failure(p.report_write, kStageUser);
    flags |= kFlagDropped;
  }
  ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  flags |= apply_landlock(p.work_dir, !p.limits->network && !network_namespace);
  const SandboxLimits& l = *p.limits;
  const auto cpu = static_cast<rlim_t>(std::ceil(l.cpu_seconds));
  set_limit(RLIMIT_CPU, cpu, cpu + 1, p.report_write);
  set_limit(RLIMIT_AS, static_cast<rlim_t>(l.memory_mb) << 20, static_cast<rlim_t>(l.memory_mb) << 20, p.report_write);
  set_limit(RLIMIT_FSIZE, static_cast<rlim_t>(l.file_size_mb) << 20, static_cast<rlim_t>(l.file_size_mb) << 20,
            p.report_write);
  set_limit(RLIMIT_NOFILE, static_cast<rlim_t>(l.open_files), static_cast<rlim_t>(l.open_files), p.report_write);
  set_limit(RLIMIT_NPROC, static_cast<rlim_t>(l.processes), static_cast<rlim_t>(l.processes), p.report_write);
  set_limit(RLIMIT_CORE, 0, 0, p.report_write);
  write_all(p.report_write, &flags, 1);
  ::execve(p.argv[0], p.argv.data(), p.envp.data());
  report_failure(p.report_write, kStageExec);
}

// The supervisor: adopts every orphan of the tool, reaps everything, reports the tool's end.
[[noreturn]] void run_supervisor(const Prepared& p) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != p.parent) ::_exit(1);
  char network_namespace = 0;
  if (!p.limits->network) {
    if (::unshare(CLONE_NEWNET) == 0 || (::geteuid() != 0 && ::unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0))
      network_namespace = 1;
  }
  write_all(p.status_write, &network_namespace, 1);
  const pid_t tool = ::fork();
  if (tool == 0) run_tool(p, network_namespace != 0);
  if (tool < 0) {
    const char flags = 0;
    write_all(p.report_write, &flags, 1);
    report_failure(p.report_write, kStageFork);
  }
  for (const int fd : {p.in_child, p.out_child, p.err_child, p.report_write}) ::close(fd);
  for (;;) {
    int status = 0;
    const pid_t ended = ::waitpid(-1, &status, 0);
    if (ended < 0 && errno == EINTR) continue;
    if (ended < 0) break;
    if (ended == tool) write_all(p.status_write, &status, sizeof status);
  }
  ::_exit(0);
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Reads exactly `size` bytes from `fd` (blocking); false at EOF first.
bool read_exactly(int fd, void* data, size_t size) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

int milliseconds_until(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

std::chrono::steady_clock::time_point deadline_after(double seconds) {
  return std::chrono::steady_clock::now() +
         std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int s = WTERMSIG(status);
    return "killed by signal " + std::to_string(s) + " (" + ::strsignal(s) + ")";
  }
  return "wait status " + std::to_string(status);
}

}  // namespace

void SandboxLimits::validate(const std::string& prefix) const {
  check(cpu_seconds > 0, prefix, ".tool_cpu_seconds (", cpu_seconds, ") must be > 0");
  check(memory_mb >= 16, prefix, ".tool_memory_mb (", memory_mb, ") must be >= 16");
  check(file_size_mb >= 1, prefix, ".tool_file_size_mb (", file_size_mb, ") must be >= 1");
  check(open_files >= 4, prefix, ".tool_open_files (", open_files, ") must be >= 4 (stdin, stdout, stderr and one)");
  check(processes >= 1, prefix, ".tool_processes (", processes, ") must be >= 1");
}

std::string SandboxIsolation::describe() const {
  std::string network = network_namespace ? "own namespace (none)" : landlock_network ? "TCP refused (Landlock)"
                                                                                      : "NOT isolated";
  return "network: " + network + "; writes: " +
         (landlock_writes ? "working directory only (Landlock)" : "NOT confined (no Landlock)") +
         "; user: " + (dropped_to_user ? "unprivileged" : "k2forge's own");
}

SandboxedProcess::SandboxedProcess(const std::vector<std::string>& argv, const std::vector<std::string>& environment,
                                   const std::string& work_dir, const SandboxLimits& limits) {
  check(!argv.empty() && !argv[0].empty() && argv[0][0] == '/', "sandbox: the program must be an absolute path, got \"",
        argv.empty() ? "" : argv[0], "\"");
  Prepared p{};
  std::vector<std::string> args = argv, env = environment;
  for (auto& a : args) p.argv.push_back(a.data());
  p.argv.push_back(nullptr);
  for (auto& e : env) p.envp.push_back(e.data());
  p.envp.push_back(nullptr);
  p.work_dir = work_dir.c_str();
  p.limits = &limits;
  p.parent = ::getpid();
  p.drop = ::geteuid() == 0 && !limits.user.empty();
  if (p.drop) {
    const passwd* user = ::getpwnam(limits.user.c_str());
    check(user != nullptr, "sandbox user \"", limits.user, "\": no such user (rl.tool_user; \"\" keeps root)");
    p.uid = user->pw_uid;
    p.gid = user->pw_gid;
    check(::chown(work_dir.c_str(), p.uid, p.gid) == 0, work_dir, ": cannot hand the tool's working directory to ",
          limits.user, ": ", std::strerror(errno));
  }
  int in[2], out[2], err[2], status[2], report[2];
  check(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) == 0 &&
            ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, out) == 0 &&
            ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, err) == 0 && ::pipe2(status, O_CLOEXEC) == 0 &&
            ::pipe2(report, O_CLOEXEC) == 0,
        "sandbox: cannot make the program's pipes: ", std::strerror(errno));
  p.in_child = in[1];
  p.out_child = out[1];
  p.err_child = err[1];
  p.status_write = status[1];
  p.report_write = report[1];
  supervisor_ = ::fork();
  if (supervisor_ == 0) run_supervisor(p);
  const int fork_error = errno;
  for (const int fd : {in[1], out[1], err[1], status[1], report[1]}) ::close(fd);
  stdin_fd_ = in[0];
  stdout_fd_ = out[0];
  stderr_fd_ = err[0];
  status_fd_ = status[0];
  if (supervisor_ < 0) {
    ::close(report[0]);
    kill_all();
    fail("sandbox: cannot start ", argv[0], ": fork: ", std::strerror(fork_error));
  }
  char network_namespace = 0;
  read_exactly(status_fd_, &network_namespace, 1);
  char flags = 0, stage = 0;
  int error = 0;
  const bool reported = read_exactly(report[0], &flags, 1);
  const bool failed = reported && read_exactly(report[0], &stage, 1) && read_exactly(report[0], &error, sizeof error);
  ::close(report[0]);
  if (!reported || failed) {
    kill_all();
    fail("cannot start ", argv[0], ": ", reported ? stage_name(stage) : "the sandbox ended before it", ": ",
         std::strerror(reported ? error : ECHILD),
         p.drop && reported && stage == kStageExec && error == EACCES
             ? " (tools run as the unprivileged user \"" + limits.user + "\" when k2forge runs as root: every directory"
                   " on the path must be searchable and the file executable by it, or set rl.tool_user = \"\")"
             : "");
  }
  isolation_.network_namespace = network_namespace != 0;
  isolation_.landlock_writes = (flags & kFlagLandlockWrites) != 0;
  isolation_.landlock_network = (flags & kFlagLandlockNetwork) != 0;
  isolation_.dropped_to_user = (flags & kFlagDropped) != 0;
  for (const int fd : {stdin_fd_, stdout_fd_, stderr_fd_, status_fd_}) ::fcntl(fd, F_SETFL, O_NONBLOCK);
}

SandboxedProcess::~SandboxedProcess() { kill_all(); }

bool SandboxedProcess::write_line(const std::string& line, double timeout_s) {
  const std::string data = line + "\n";
  const auto deadline = deadline_after(timeout_s);
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(stdin_fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return false;  // EPIPE, ECONNRESET: it no longer reads
    pollfd writable{stdin_fd_, POLLOUT, 0};
    if (::poll(&writable, 1, milliseconds_until(deadline)) <= 0) return false;
    drain_stderr();
  }
  return true;
}

void SandboxedProcess::drain_stderr() {
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(stderr_fd_, buffer, sizeof buffer);
    if (n <= 0) return;
    stderr_tail_.append(buffer, static_cast<size_t>(n));
    constexpr size_t kKeep = 2048;
    if (stderr_tail_.size() > kKeep) stderr_tail_.erase(0, stderr_tail_.size() - kKeep);
  }
}

SandboxedProcess::Read SandboxedProcess::read_line(std::string& line, double timeout_s, size_t max_bytes) {
  const auto deadline = deadline_after(timeout_s);
  for (;;) {
    const size_t newline = pending_.find('\n');
    if (newline != std::string::npos) {
      if (newline > max_bytes) return Read::kTooLong;
      line = pending_.substr(0, newline);
      pending_.erase(0, newline + 1);
      return Read::kLine;
    }
    if (pending_.size() > max_bytes) return Read::kTooLong;
    pollfd fds[2] = {{stdout_fd_, POLLIN, 0}, {stderr_fd_, POLLIN, 0}};
    const int ready = ::poll(fds, 2, milliseconds_until(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return Read::kTimeout;
    if (fds[1].revents != 0) drain_stderr();
    if (fds[0].revents == 0) continue;
    char buffer[65536];
    const ssize_t n = ::read(stdout_fd_, buffer, sizeof buffer);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      drain_stderr();
      return Read::kClosed;
    }
    if (n > 0) pending_.append(buffer, static_cast<size_t>(n));
  }
}

std::string SandboxedProcess::how_it_ended() {
  if (!ended_.empty() || status_fd_ < 0) return ended_;
  pollfd readable{status_fd_, POLLIN, 0};
  if (::poll(&readable, 1, 1000) > 0) {  // a closed stdout comes a moment before the supervisor's report
    int status = 0;
    if (read_exactly(status_fd_, &status, sizeof status)) ended_ = describe_wait_status(status);
  }
  return ended_;
}

void SandboxedProcess::kill_all() noexcept {
  if (supervisor_ > 0) {
    // Descendants first: while the supervisor lives, every orphan is its child and can be found.
    for (int round = 0; round < 1000; ++round) {
      std::vector<pid_t> alive;
      try {
        alive = live_descendants(supervisor_);
      } catch (const std::exception&) {  // no /proc: the supervisor's group is all that can be reached
        ::kill(-supervisor_, SIGKILL);
      }
      if (alive.empty()) break;
      for (const pid_t pid : alive) ::kill(pid, SIGKILL);
      ::usleep(round == 0 ? 0 : 1000);
    }
    ::kill(supervisor_, SIGKILL);
    while (::waitpid(supervisor_, nullptr, 0) < 0 && errno == EINTR) {
    }
    supervisor_ = -1;
  }
  for (int* fd : {&stdin_fd_, &stdout_fd_, &stderr_fd_, &status_fd_}) close_fd(*fd);
}

std::vector<pid_t> live_descendants(pid_t root) {
  std::multimap<pid_t, pid_t> children;  // parent -> child, live processes only
  DIR* proc = ::opendir("/proc");
  check(proc != nullptr, "/proc: cannot list processes: ", std::strerror(errno));
  while (const dirent* entry = ::readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    // POSIX reads: a process may end between readdir and read (ESRCH), which iostreams would throw.
    const int fd = ::open(("/proc/" + std::string(entry->d_name) + "/stat").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buffer[1024];
    const ssize_t n = ::read(fd, buffer, sizeof buffer - 1);
    ::close(fd);
    if (n <= 0) continue;
    const std::string stat(buffer, static_cast<size_t>(n));
    const size_t name_end = stat.rfind(')');  // the command name may hold spaces and parentheses
    if (name_end == std::string::npos || name_end + 4 >= stat.size()) continue;
    const char state = stat[name_end + 2];
    const long parent = std::strtol(stat.c_str() + name_end + 4, nullptr, 10);
    if (state != 'Z' && state != 'X') children.emplace(static_cast<pid_t>(parent), static_cast<pid_t>(pid));
  }
  ::closedir(proc);
  std::vector<pid_t> found, frontier{root};
  while (!frontier.empty()) {
    const pid_t parent = frontier.back();
    frontier.pop_back();
    const auto range = children.equal_range(parent);
    for (auto it = range.first; it != range.second; ++it) {
      found.push_back(it->second);
      frontier.push_back(it->second);
    }
  }
  return found;
}

}  // namespace k2f
