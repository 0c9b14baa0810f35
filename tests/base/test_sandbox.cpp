// base/sandbox.cpp with /bin/sh as the program: lines go in and out, the end is reported, and
// kill_all reaches descendants that left the process group and their parents (setsid, double
// fork), which a kill of the group alone would miss.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "base/error.h"
#include "base/sandbox.h"
#include "test_util.h"

namespace k2f {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> shell(const std::string& script) { return {"/bin/sh", "-c", script}; }

TEST(Sandbox, LinesGoInAndOutAndTheEndIsReported) {
  testing::ScratchDir dir("sandbox");
  SandboxedProcess process(shell("read line; echo \"got $line\"; exit 3"), {"PATH=/usr/bin:/bin"}, dir.str(), {});
  ASSERT_TRUE(process.write_line("hello", 5));
  std::string line;
  ASSERT_EQ(process.read_line(line, 5, 1024), SandboxedProcess::Read::kLine);
  EXPECT_EQ(line, "got hello");
  EXPECT_EQ(process.read_line(line, 5, 1024), SandboxedProcess::Read::kClosed);
  EXPECT_EQ(process.how_it_ended(), "exit status 3");
}

TEST(Sandbox, ReadsStopAtTheirDeadlineAndTheirSizeLimit) {
  testing::ScratchDir dir("sandbox");
  SandboxedProcess silent(shell("sleep 100"), {}, dir.str(), {});
  std::string line;
  EXPECT_EQ(silent.read_line(line, 0.2, 1024), SandboxedProcess::Read::kTimeout);
  SandboxedProcess chatty(shell("while :; do printf xxxxxxxxxx; done"), {}, dir.str(), {});
  EXPECT_EQ(chatty.read_line(line, 5, 4096), SandboxedProcess::Read::kTooLong);
}

TEST(Sandbox, KillAllReachesDescendantsThatLeftTheProcessGroup) {
  testing::ScratchDir dir("sandbox");
  SandboxedProcess process(shell("setsid sh -c '(sleep 300 &) ; sleep 300' & echo started; sleep 300"),
                           {"PATH=/usr/bin:/bin"}, dir.str(), {});
  std::string line;
  ASSERT_EQ(process.read_line(line, 5, 1024), SandboxedProcess::Read::kLine);
  std::vector<pid_t> found;
  for (int i = 0; i < 200 && found.size() < 4; ++i) {  // sh, the setsid'd sh, and its two sleeps
    found = live_descendants(process.supervisor_pid());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(found.size(), 4u);
  process.kill_all();
  EXPECT_TRUE(live_descendants(::getpid()).empty());
  for (const pid_t pid : found) {  // gone, or a zombie until its new parent reaps it
    const int fd = ::open(("/proc/" + std::to_string(pid) + "/stat").c_str(), O_RDONLY);
    char buffer[1024];
    const ssize_t n = fd < 0 ? 0 : ::read(fd, buffer, sizeof buffer - 1);
    if (fd >= 0) ::close(fd);
    const std::string text(buffer, static_cast<size_t>(std::max<ssize_t>(n, 0)));
    EXPECT_TRUE(text.empty() || text.find(") Z") != std::string::npos) << pid << " is alive: " << text;
  }
}

TEST(Sandbox, AProgramThatCannotStartIsAnErrorNamingIt) {
  testing::ScratchDir dir("sandbox");
  try {
    SandboxedProcess process({"/no/such/program"}, {}, dir.str(), {});
    ADD_FAILURE() << "started";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot start /no/such/program: exec: No such file"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(live_descendants(::getpid()).empty());
}

TEST(Sandbox, LimitsNameTheirRecipeKeys) {
  SandboxLimits limits;
  limits.memory_mb = 1;
  try {
    limits.validate("rl");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "rl.tool_memory_mb (1) must be >= 16");
  }
}

}  // namespace
}  // namespace k2f
