#include "base/threads.h"

#include <ATen/Parallel.h>
#include <sched.h>

#include <cstdlib>
#include <string>

#include "base/error.h"
#include "base/log.h"

namespace k2f {

bool& log::quiet() {
  static bool value = false;
  return value;
}

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int count = CPU_COUNT(&set);
    if (count > 0) return count;
  }
  return 1;
}

int configure_intra_op_threads(int local_ranks) {
  int threads = 0;
  const char* from_env = std::getenv("OMP_NUM_THREADS");
  if (from_env != nullptr && *from_env != '\0') {
    try {
      threads = std::stoi(from_env);
    } catch (const std::exception&) {
      fail("OMP_NUM_THREADS (", from_env, ") must be a positive integer");
    }
    check(threads >= 1, "OMP_NUM_THREADS (", from_env, ") must be a positive integer");
  } else {
    threads = std::max(1, available_cores() / std::max(1, local_ranks));
  }
  at::set_num_threads(threads);
  log::info("intra-op threads: ", threads, from_env ? " (from OMP_NUM_THREADS)" : " (from available cores)");
  return threads;
}

}  // namespace k2f
