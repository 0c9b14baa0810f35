#include "data/progress_bar.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

namespace k2f::data {

ProgressBar::ProgressBar(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total, 1)),
      enabled_(enabled),
      terminal_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

void ProgressBar::update(int64_t done, const std::function<std::string()>& detail) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const int decile = static_cast<int>(std::min<int64_t>(done * 10 / total_, 10));
  if (terminal_ ? now - last_draw_ < std::chrono::milliseconds(200) : decile == last_decile_) return;
  last_draw_ = now;
  last_decile_ = decile;
  draw(done, detail(), false);
}

void ProgressBar::finish(const std::string& detail) {
  if (enabled_) draw(total_, detail, true);
}

void ProgressBar::draw(int64_t done, const std::string& detail, bool final) {
  const double fraction = std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(fraction * kWidth);
  std::string bar = "[" + std::string(filled, '=') + (filled < kWidth ? ">" : "") +
                    std::string(std::max(0, kWidth - filled - 1), ' ') + "]";
  char line[256];
  std::snprintf(line, sizeof(line), "%s %s %5.1f%% %6.1fs %s", label_.c_str(), bar.c_str(), 100.0 * fraction, seconds,
                detail.c_str());
  if (terminal_) std::cerr << "\r" << line << (final ? "\n" : "") << std::flush;
  else std::cerr << line << "\n";
}

}  // namespace k2f::data
