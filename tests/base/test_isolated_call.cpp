// base/isolated_call.cpp: whatever the child does (return, throw, die by a signal, never end),
// the parent gets one outcome and is itself unharmed; nothing the child does reaches the parent.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>

#include "base/error.h"
#include "base/isolated_call.h"

namespace k2f {
namespace {

TEST(IsolatedCall, ReturningBodyCompletes) {
  const IsolatedOutcome outcome = run_isolated([] {}, 30);
  EXPECT_EQ(outcome.kind, IsolatedOutcome::Kind::kCompleted);
  EXPECT_TRUE(outcome.message.empty());
}

TEST(IsolatedCall, ThrowingBodyReportsItsMessage) {
  const std::string long_message(100000, 'x');  // more than one pipe buffer
  const IsolatedOutcome outcome = run_isolated([&] { fail("store.h5: bad ", long_message); }, 30);
  EXPECT_EQ(outcome.kind, IsolatedOutcome::Kind::kFailed);
  EXPECT_EQ(outcome.message, "store.h5: bad " + long_message);
}

TEST(IsolatedCall, ChildKilledBySignalIsACrashNamingTheSignal) {
  const IsolatedOutcome outcome = run_isolated([] { ::kill(::getpid(), SIGKILL); }, 30);
  EXPECT_EQ(outcome.kind, IsolatedOutcome::Kind::kCrashed);
  EXPECT_NE(outcome.description.find("signal 9"), std::string::npos) << outcome.description;
}

TEST(IsolatedCall, ChildLeavingWithoutReportIsACrash) {
  const IsolatedOutcome outcome = run_isolated([] { ::_exit(1); }, 30);
  EXPECT_EQ(outcome.kind, IsolatedOutcome::Kind::kCrashed);
  EXPECT_EQ(outcome.description, "exit status 1");
}

TEST(IsolatedCall, EndlessChildIsKilledAtTheTimeout) {
  const auto start = std::chrono::steady_clock::now();
  const IsolatedOutcome outcome = run_isolated([] {
    while (true) ::pause();
  }, 0.5);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(outcome.kind, IsolatedOutcome::Kind::kTimedOut);
  EXPECT_GE(seconds, 0.5);
}

int counter_in_parent = 0;

TEST(IsolatedCall, ChildChangesStayInTheChildAndTheHookRunsThere) {
  set_isolated_child_hook([] { counter_in_parent += 100; });
  const IsolatedOutcome outcome = run_isolated([] {
    check(counter_in_parent == 100, "the hook did not run in the child: ", counter_in_parent);
    counter_in_parent += 1;
  }, 30);
  set_isolated_child_hook(nullptr);
  EXPECT_EQ(outcome.kind, IsolatedOutcome::Kind::kCompleted) << outcome.message;
  EXPECT_EQ(counter_in_parent, 0);
}

}  // namespace
}  // namespace k2f
