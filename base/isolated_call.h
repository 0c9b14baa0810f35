// Runs a piece of code in a forked child process, so that a crash or an endless loop inside a
// third-party parser becomes an error of the caller instead of killing or hanging k2forge.
// Why: Debian 12's libhdf5 1.10.8 is not hardened against corrupt files (fuzz/fuzz_token_store
// found a heap overflow inside its object-header code, reached before any k2forge check can
// run); a store is therefore first read in a child, and only opened in-process once the child
// read it without harm. The child runs only `body` and leaves with _exit, so no atexit handler,
// stdio buffer or library state of the parent is touched twice.
#pragma once

#include <functional>
#include <string>

namespace k2f {

struct IsolatedOutcome {
  enum class Kind {
    kCompleted,  // body returned
    kFailed,     // body threw; `message` is what() of the exception
    kCrashed,    // the child died (signal or sanitizer exit) before reporting; see `description`
    kTimedOut,   // still running after the timeout; the child was killed
  };
  Kind kind = Kind::kCompleted;
  std::string message;
  // "signal 11 (Segmentation fault)", "exit status 1", ...: how the child ended, for kCrashed.
  std::string description;
};

// Runs `body` in a forked child and waits for it at most `timeout_seconds`.
IsolatedOutcome run_isolated(const std::function<void()>& body, double timeout_seconds);

// A function every isolated child runs first (nullptr for none). For harnesses: a libFuzzer target
// uses it to stop the sanitizer runtime from reporting the child's death as the fuzzer's crash.
using IsolatedChildHook = void (*)();
void set_isolated_child_hook(IsolatedChildHook hook);

}  // namespace k2f
