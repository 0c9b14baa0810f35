// Tests of train/rl/program_tool.cpp (and the sandbox under it, base/sandbox.cpp): real tool
// processes (Python scripts) that misbehave in every way the sandbox is built for each become the
// expected tool message, the episode goes on, and afterwards no process they started is alive and
// nothing was written outside the episode's directory. Declarations that cannot run are refused
// with errors naming the file, tool and field.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

#include "base/sandbox.h"
#include "test_util.h"
#include "train/rl/program_tool.h"
#include "train/rl/tools.h"

namespace k2f::train::rl {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;

// One script serves every tool; what it does depends on the name of the call.
constexpr const char* kToolScript = R"(import json, os, socket, sys, time
for line in sys.stdin:
    call = json.loads(line)
    name, args = call["name"], call["arguments"]
    if name == "echo":
        with open("note.txt", "w") as f:
            f.write(args["text"])
        answer = {"content": args["text"] + " from " + os.getcwd()}
    elif name == "spin":
        while True:
            pass
    elif name == "hog":
        block = bytearray(8 << 30)
        answer = {"content": "allocated %d bytes" % len(block)}
    elif name == "spawn":
        for i in range(3):
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    with open("pid-%d" % i, "w") as f:
                        f.write(str(os.getpid()))
                    time.sleep(1000)
                os._exit(0)
        while len([p for p in os.listdir(".") if p.startswith("pid-")]) < 3:
            time.sleep(0.01)
        time.sleep(0.1)
        answer = {"content": "spawned"}
    elif name == "fill":
        with open("big.bin", "wb") as f:
            for _ in range(1024):
                f.write(b"x" * (1 << 20))
        answer = {"content": "wrote 1 GB"}
    elif name == "escape":
        with open(args["path"], "w") as f:
            f.write("escaped")
        answer = {"content": "wrote " + args["path"]}
    elif name == "dial":
        socket.create_connection(("127.0.0.1", int(args["port"])), timeout=2).close()
        answer = {"content": "connected"}
    elif name == "babble":
        print("this is not JSON", flush=True)
        continue
    elif name == "refuse":
        answer = {"error": "no such key: " + args["text"]}
    print(json.dumps(answer), flush=True)
)";

std::string declaration(const std::string& name, const std::string& command = R"(["python3", "tool.py"])") {
  return R"({"type": "function", "function": {"name": ")" + name + R"(", "description": "test tool",
      "parameters": {"type": "object", "properties": {"text": {"type": "string"}, "path": {"type": "string"},
      "port": {"type": "integer"}}}}, "command": )" + command + "}";
}

void write_file(const std::string& path, const std::string& text, fs::perms perms = fs::perms::owner_read |
                                                                                   fs::perms::owner_write |
                                                                                   fs::perms::group_read |
                                                                                   fs::perms::others_read) {
  std::ofstream(path) << text;
  fs::permissions(path, perms);
}

// Alive: the process exists and is not a zombie.
bool alive(pid_t pid) {
  const int fd = ::open(("/proc/" + std::to_string(pid) + "/stat").c_str(), O_RDONLY);  // iostreams throw on ESRCH
  if (fd < 0) return false;
  char buffer[1024];
  const ssize_t n = ::read(fd, buffer, sizeof buffer - 1);
  ::close(fd);
  const std::string stat(buffer, static_cast<size_t>(std::max<ssize_t>(n, 0)));
  const size_t end = stat.rfind(')');
  return end != std::string::npos && end + 2 < stat.size() && stat[end + 2] != 'Z' && stat[end + 2] != 'X';
}

struct ToolBench {
  ScratchDir dir{"program-tool"};
  std::unique_ptr<ToolRunner> runner;
  explicit ToolBench(ToolLimits limits = {}) {
    write_file(dir / "tool.py", kToolScript);
    std::string json = "[";
    for (const char* name : {"echo", "spin", "hog", "spawn", "fill", "escape", "dial", "babble", "refuse"})
      json += std::string(json.size() > 1 ? "," : "") + declaration(name);
    write_file(dir / "tools.json", json + "]");
    fs::create_directories(dir / "work");
    limits.work_root = dir / "work";
    limits.timeout_s = 3.0;
    limits.max_output_chars = 4096;
    limits.sandbox.memory_mb = 1024;
    limits.sandbox.file_size_mb = 16;
    runner = std::make_unique<ToolRunner>(limits);
    for (auto& tool : read_tool_declarations(dir / "tools.json")) runner->add_program(std::move(tool));
  }
  ToolResult call(ToolSession& session, const std::string& name, const std::string& arguments, int64_t index) {
    return runner->run({"functions." + name + ":" + std::to_string(index), arguments, ""}, index, &session);
  }
};

TEST(ProgramTool, EachMisbehavingToolBecomesItsToolMessageAndLeavesNothingBehind) {
  ToolBench bench;
  const std::string outside = bench.dir / "outside.txt";
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const int port = ntohs(address.sin_port);

  std::vector<pid_t> spawned;
  std::string episode_dir;
  {
    auto session = bench.runner->open_session();
    int64_t index = 0;
    const ToolResult hello = bench.call(*session, "echo", R"({"text": "hello"})", index++);
    EXPECT_EQ(hello.event, ToolEvent::ok) << hello.content;
    episode_dir = session->work_dir();
    EXPECT_EQ(hello.content, "hello from " + episode_dir);
    EXPECT_TRUE(fs::exists(fs::path(episode_dir) / "note.txt"));

    const ToolResult spin = bench.call(*session, "spin", "{}", index++);
    EXPECT_EQ(spin.event, ToolEvent::timeout) << spin.content;
    EXPECT_NE(spin.content.find("spin timed out after 3"), std::string::npos) << spin.content;

    const ToolResult hog = bench.call(*session, "hog", "{}", index++);
    EXPECT_EQ(hog.event, ToolEvent::crashed) << hog.content;
    EXPECT_NE(hog.content.find("MemoryError"), std::string::npos) << hog.content;

    const ToolResult spawn = bench.call(*session, "spawn", "{}", index++);
    EXPECT_EQ(spawn.event, ToolEvent::ok) << spawn.content;
    for (int i = 0; i < 3; ++i) {
      std::ifstream in(fs::path(episode_dir) / ("pid-" + std::to_string(i)));
      pid_t pid = 0;
      in >> pid;
      ASSERT_GT(pid, 0) << "pid-" << i;
      EXPECT_TRUE(alive(pid)) << pid;  // setsid'd grandchildren, running while the episode lasts
      spawned.push_back(pid);
    }

    const ToolResult fill = bench.call(*session, "fill", "{}", index++);
    EXPECT_EQ(fill.event, ToolEvent::crashed) << fill.content;
    // Python ignores SIGXFSZ, so the write past RLIMIT_FSIZE fails (EFBIG) instead of killing it.
    EXPECT_NE(fill.content.find("File too large"), std::string::npos) << fill.content;
    EXPECT_LE(fs::file_size(fs::path(episode_dir) / "big.bin"), 16u << 20);

    const ToolResult escape = bench.call(*session, "escape", R"({"path": ")" + outside + R"("})", index++);
    EXPECT_EQ(escape.event, ToolEvent::crashed) << escape.content;
    EXPECT_NE(escape.content.find("PermissionError"), std::string::npos) << escape.content;

    const ToolResult dial = bench.call(*session, "dial", R"({"port": )" + std::to_string(port) + "}", index++);
    EXPECT_EQ(dial.event, ToolEvent::crashed) << dial.content;
    EXPECT_NE(dial.content.find("Error"), std::string::npos) << dial.content;

    const ToolResult babble = bench.call(*session, "babble", "{}", index++);
    EXPECT_EQ(babble.event, ToolEvent::bad_answer) << babble.content;
    EXPECT_NE(babble.content.find("this is not JSON"), std::string::npos) << babble.content;

    const ToolResult refuse = bench.call(*session, "refuse", R"({"text": "k7"})", index++);
    EXPECT_EQ(refuse.event, ToolEvent::tool_error) << refuse.content;
    EXPECT_EQ(refuse.content, "error: no such key: k7");

    // The episode goes on: the tools that failed are started again at their next call.
    const ToolResult again = bench.call(*session, "echo", R"({"text": "still here"})", index++);
    EXPECT_EQ(again.event, ToolEvent::ok) << again.content;
  }
  for (const pid_t pid : spawned) EXPECT_FALSE(alive(pid)) << "process " << pid << " outlived its episode";
  EXPECT_TRUE(live_descendants(::getpid()).empty()) << live_descendants(::getpid()).size() << " processes left";
  EXPECT_FALSE(fs::exists(outside));
  EXPECT_FALSE(fs::exists(episode_dir)) << "the episode's directory is removed with it";
  EXPECT_EQ(::accept(listener, nullptr, nullptr), -1) << "a tool reached the host's network";
  ::close(listener);
  // Nothing but the episode directories was made in the work root, nor written beside the tools.
  std::vector<std::string> beside;
  for (const auto& entry : fs::directory_iterator(bench.dir.str())) beside.push_back(entry.path().filename());
  std::sort(beside.begin(), beside.end());
  EXPECT_EQ(beside, (std::vector<std::string>{"tool.py", "tools.json", "work"}));
}

TEST(ProgramTool, TheSandboxSaysWhatItEnforces) {
  ToolBench bench;
  const std::string described = bench.runner->check_programs_start();
  EXPECT_NE(described.find("network: own namespace"), std::string::npos) << described;
  EXPECT_NE(described.find("writes: working directory only"), std::string::npos) << described;
}

TEST(ProgramTool, EpisodesGetFreshDirectoriesAndTheirOwnProcesses) {
  ToolBench bench;
  auto first = bench.runner->open_session();
  auto second = bench.runner->open_session();
  const ToolResult a = bench.call(*first, "echo", R"({"text": "a"})", 0);
  const ToolResult b = bench.call(*second, "echo", R"({"text": "b"})", 0);
  ASSERT_EQ(a.event, ToolEvent::ok);
  ASSERT_EQ(b.event, ToolEvent::ok);
  EXPECT_NE(first->work_dir(), second->work_dir());
  std::ifstream note(fs::path(first->work_dir()) / "note.txt");
  std::string text;
  note >> text;
  EXPECT_EQ(text, "a");
}

std::string declarations_error(const ScratchDir& dir, const std::string& json) {
  write_file(dir / "tools.json", json);
  try {
    read_tool_declarations(dir / "tools.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ProgramTool, DeclarationsThatCannotRunAreRefusedNamingTheToolAndField) {
  ScratchDir dir("program-tool-bad");
  write_file(dir / "tool.py", kToolScript);
  write_file(dir / "plain.txt", "not a program");
  const std::string schema = R"("parameters": {"type": "object", "properties": {"q": {"type": "string"}}})";
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {R"([{"type": "function", "function": {"name": "lookup", )" + schema + "}}]",
       {"tools.json: tool 0 (lookup)", "no \"command\""}},
      {R"([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object",
          "properties": {"q": {"type": "strng"}}}}, "command": ["python3", "tool.py"]}])",
       {"(lookup).function.parameters.properties.q.type", "\"strng\"", "not a JSON Schema type"}},
      {R"([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object",
          "properties": {}, "required": ["q"]}}, "command": ["python3", "tool.py"]}])",
       {"required names \"q\", which is not in .properties"}},
      {R"([{"type": "function", "function": {"name": "lookup", "parameters": "q"}, "command": ["python3"]}])",
       {"(lookup).function.parameters", "expected a JSON Schema object"}},
      {R"([{"type": "function", "function": {"name": "lookup", )" + schema + R"(}, "command": ["./plain.txt"]}])",
       {"(lookup).command[0]", "plain.txt: not an executable file"}},
      {R"([{"type": "function", "function": {"name": "lookup", )" + schema + R"(}, "command": ["./absent.py"]}])",
       {"(lookup).command[0]", "absent.py: no such file"}},
      {R"([{"type": "function", "function": {"name": "lookup", )" + schema + R"(}, "command": ["no-such-program"]}])",
       {"\"no-such-program\"", "not found in the tool PATH"}},
      {"[" + declaration("echo") + "," + declaration("echo") + "]", {"tool \"echo\" is declared twice"}},
      {"{}", {"tools.json: expected a non-empty array of tool declarations"}},
      {"[", {"tools.json: not valid JSON"}},
  };
  for (const auto& [json, expected] : cases) {
    const std::string message = declarations_error(dir, json);
    for (const auto& part : expected) EXPECT_NE(message.find(part), std::string::npos) << message << "\n" << json;
  }
}

TEST(ProgramTool, AProgramTheSandboxUserCannotRunFailsBeforeTheRunNamingIt) {
  ScratchDir dir("program-tool-private");
  if (::geteuid() != 0) GTEST_SKIP() << "runs only as root: tools then run as the unprivileged user";
  fs::create_directories(dir / "private");
  fs::permissions(dir / "private", fs::perms::owner_all);  // root only
  write_file(dir / "private/tool.py", std::string("#!/usr/bin/python3\n") + kToolScript,
             fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
  write_file(dir / "tools.json", "[" + declaration("echo", R"(["private/tool.py"])") + "]");
  ToolLimits limits;
  limits.work_root = dir.str();
  ToolRunner runner(limits);
  for (auto& tool : read_tool_declarations(dir / "tools.json")) runner.add_program(std::move(tool));
  try {
    runner.check_programs_start();
    ADD_FAILURE() << "a program nobody may run was started";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("private/tool.py"), std::string::npos) << message;
    EXPECT_NE(message.find("exec"), std::string::npos) << message;
    EXPECT_NE(message.find("rl.tool_user"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace k2f::train::rl
