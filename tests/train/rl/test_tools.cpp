// train/rl/tools.cpp (acceptance 5): malformed call JSON, unknown tool, tool error, timeout,
// oversized output and calls over the budget each come back as a tool message (never an
// exception) and are counted under their own event.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "base/error.h"
#include "train/rl/tools.h"

namespace k2f::train::rl {
namespace {

// Blocks until released: a deterministic "hung" tool, no sleeps or timing assertions.
struct Gate {
  std::mutex mutex;
  std::condition_variable cv;
  bool open = false;
  void release() {
    std::lock_guard<std::mutex> lock(mutex);
    open = true;
    cv.notify_all();
  }
};

class HangingTool : public Tool {
 public:
  explicit HangingTool(std::shared_ptr<Gate> gate) : gate_(std::move(gate)) {}
  std::string name() const override { return "hang"; }
  std::string run(const nlohmann::json&) const override {
    std::unique_lock<std::mutex> lock(gate_->mutex);
    gate_->cv.wait(lock, [&] { return gate_->open; });
    return "late";
  }

 private:
  std::shared_ptr<Gate> gate_;
};

class VerboseTool : public Tool {
 public:
  std::string name() const override { return "verbose"; }
  std::string run(const nlohmann::json&) const override { return std::string(1000, 'x'); }
};

ToolRunner make_runner(std::shared_ptr<Gate> gate) {
  ToolLimits limits;
  limits.timeout_s = 0.05;
  limits.max_output_chars = 100;
  ToolRunner runner(limits);
  runner.add(std::make_shared<CalculatorTool>());
  runner.add(std::make_shared<HangingTool>(std::move(gate)));
  runner.add(std::make_shared<VerboseTool>());
  return runner;
}

TEST(Tools, CalculatorCall) {
  auto gate = std::make_shared<Gate>();
  const auto runner = make_runner(gate);
  const auto r = runner.run({"functions.calculator:0", "{\"expression\": \"(17 + 5) * 3\"}", ""}, 0);
  EXPECT_EQ(r.event, ToolEvent::ok);
  EXPECT_EQ(r.content, "66");
  EXPECT_EQ(r.call_id, "functions.calculator:0");
  EXPECT_EQ(r.tool_name, "calculator");
  gate->release();
}

TEST(Tools, EveryFailureIsAMessageAndAnEvent) {
  auto gate = std::make_shared<Gate>();
  const auto runner = make_runner(gate);
  struct Case {
    ToolCallText call;
    ToolEvent event;
    std::string fragment;
  };
  const std::vector<Case> cases = {
      {{"functions.calculator:1", "{\"expression\": ", ""}, ToolEvent::malformed, "not valid JSON"},
      {{"functions.calculator:1", "[1, 2]", ""}, ToolEvent::malformed, "must be a JSON object"},
      {{"calculator", "{}", ""}, ToolEvent::malformed, "malformed tool call id"},
      {{"", "", "the call was never closed"}, ToolEvent::malformed, "the call was never closed"},
      {{"functions.search:1", "{\"q\": 1}", ""}, ToolEvent::unknown_tool, "unknown tool \"search\""},
      {{"functions.calculator:1", "{\"expression\": \"1 / 0\"}", ""}, ToolEvent::tool_error, "error: division by zero"},
      {{"functions.calculator:1", "{\"expr\": \"1\"}", ""}, ToolEvent::tool_error, "calculator needs"},
      {{"functions.hang:1", "{}", ""}, ToolEvent::timeout, "hang timed out"},
      {{"functions.verbose:1", "{}", ""}, ToolEvent::oversized, "[output cut: 1000 characters, limit 100]"},
  };
  ToolStats stats;
  for (const auto& c : cases) {
    const auto r = runner.run(c.call, 1);
    EXPECT_EQ(r.event, c.event) << c.fragment;
    EXPECT_NE(r.content.find(c.fragment), std::string::npos) << r.content;
    EXPECT_FALSE(r.call_id.empty());
    stats.add(r.event);
  }
  const auto refused = runner.refuse_over_limit({"functions.calculator:2", "{}", ""}, 2, 2);
  EXPECT_EQ(refused.event, ToolEvent::over_limit);
  EXPECT_NE(refused.content.find("tool call limit (2) reached"), std::string::npos);
  stats.add(refused.event);
  EXPECT_EQ(stats.calls, 10);
  EXPECT_EQ(stats.count(ToolEvent::malformed), 4);
  EXPECT_EQ(stats.count(ToolEvent::unknown_tool), 1);
  EXPECT_EQ(stats.count(ToolEvent::tool_error), 2);
  EXPECT_EQ(stats.count(ToolEvent::timeout), 1);
  EXPECT_EQ(stats.count(ToolEvent::oversized), 1);
  EXPECT_EQ(stats.count(ToolEvent::over_limit), 1);
  EXPECT_EQ(stats.count(ToolEvent::ok), 0);
  gate->release();  // the abandoned worker finishes and drops its result
}

TEST(Tools, IdsAndLimitsAreChecked) {
  EXPECT_EQ(tool_name_from_id("functions.calculator:12"), "calculator");
  EXPECT_EQ(tool_name_from_id("functions.calculator:"), "");
  EXPECT_EQ(tool_name_from_id("functions.:1"), "");
  EXPECT_EQ(tool_name_from_id("calculator:1"), "");
  ToolLimits limits;
  limits.timeout_s = 0;
  try {
    limits.validate();
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rl.tool_timeout_s (0) must be > 0"), std::string::npos);
  }
}

}  // namespace
}  // namespace k2f::train::rl
