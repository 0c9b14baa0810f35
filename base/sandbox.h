// A program the user supplies, run so that nothing it does outlives it or reaches past its limits:
// its own process group under a supervisor that adopts every orphan (a child subreaper), so a
// forked, double-forked or setsid'd descendant is still found and killed; rlimits on CPU, address
// space, file size, open files and processes; writes only inside its working directory (Landlock,
// where the kernel has it); no network (a new network namespace, else Landlock's TCP rules); an
// unprivileged user when k2forge runs as root. What the kernel could not give is reported, never
// assumed. Input and output are line-based over sockets (no SIGPIPE when the program dies).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace k2f {

struct SandboxLimits {
  double cpu_seconds = 10.0;      // RLIMIT_CPU of the program (per process it starts)
  int64_t memory_mb = 2048;       // RLIMIT_AS
  int64_t file_size_mb = 64;      // RLIMIT_FSIZE: a larger write is stopped (SIGXFSZ)
  int64_t open_files = 64;        // RLIMIT_NOFILE
  int64_t processes = 64;         // RLIMIT_NPROC (of the sandbox user)
  bool network = false;           // true: the program keeps the host's network
  std::string user = "nobody";    // run as this user when k2forge runs as root ("" keeps root)
  void validate(const std::string& prefix) const;  // messages name prefix.tool_<limit>
};

// What the kernel granted, for the log.
struct SandboxIsolation {
  bool network_namespace = false;  // a fresh network namespace (no interfaces but a down loopback)
  bool landlock_writes = false;    // writes confined to the working directory
  bool landlock_network = false;   // TCP bind/connect refused (used when no namespace could be made)
  bool dropped_to_user = false;    // runs as SandboxLimits::user instead of root
  std::string describe() const;    // "network: namespace; writes: working directory only; ..."
};

class SandboxedProcess {
 public:
  // Starts argv[0] (an absolute path) in `work_dir` with `environment` ("KEY=VALUE"); throws
  // k2f::Error naming the program when it cannot be started or exec fails.
  SandboxedProcess(const std::vector<std::string>& argv, const std::vector<std::string>& environment,
                   const std::string& work_dir, const SandboxLimits& limits);
  ~SandboxedProcess();  // kill_all()
  SandboxedProcess(const SandboxedProcess&) = delete;
  SandboxedProcess& operator=(const SandboxedProcess&) = delete;

  enum class Read { kLine, kTimeout, kTooLong, kClosed };
  // Sends `line` and a newline; false when the program no longer reads (it died or closed stdin).
  bool write_line(const std::string& line, double timeout_s);
  // The next line of stdout (without its newline), waiting at most `timeout_s`.
  Read read_line(std::string& line, double timeout_s, size_t max_bytes);
  // Kills every process of the sandbox (descendants first, then the supervisor) and reaps it.
  void kill_all() noexcept;
  // "exit status 1", "killed by signal 9 (Killed)", ... once the program has ended; "" before.
  std::string how_it_ended();
  const std::string& stderr_tail() const { return stderr_tail_; }  // its last stderr bytes
  const SandboxIsolation& isolation() const { return isolation_; }
  pid_t supervisor_pid() const { return supervisor_; }

 private:
  void drain_stderr();
  pid_t supervisor_ = -1;
  int stdin_fd_ = -1, stdout_fd_ = -1, stderr_fd_ = -1, status_fd_ = -1;
  std::string pending_;      // stdout bytes read past the last line
  std::string stderr_tail_;
  std::string ended_;
  SandboxIsolation isolation_;
};

// Live (not zombie) processes descended from `root` by parent links, `root` excluded.
std::vector<pid_t> live_descendants(pid_t root);

}  // namespace k2f
