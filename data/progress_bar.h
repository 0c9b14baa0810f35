// A progress bar on stderr for long jobs (data build). On a terminal it redraws one line at
// most five times a second; otherwise (logs, CI) it prints a plain line at every 10%.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace k2f::data {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, bool enabled = true);
  // `done` of `total` units; `detail()` (called only when a line is drawn) is appended to it.
  void update(int64_t done, const std::function<std::string()>& detail);
  void finish(const std::string& detail);

 private:
  void draw(int64_t done, const std::string& detail, bool final);

  std::string label_;
  int64_t total_;
  bool enabled_, terminal_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace k2f::data
