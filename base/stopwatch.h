// Wall-clock timing for metrics and benchmarks: one steady clock and one way to read it, so
// every step time, throughput and benchmark figure is measured the same way.
#pragma once

#include <chrono>

namespace k2f {

using SteadyClock = std::chrono::steady_clock;

inline double seconds_since(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

}  // namespace k2f
