#include "base/threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <malloc.h>
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

void configure_tensor_allocator() {
  for (const char* name : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"}) {
    if (std::getenv(name) != nullptr) return;
  }
  constexpr int kThresholdBytes = 1 << 30;
  mallopt(M_MMAP_THRESHOLD, kThresholdBytes);
  mallopt(M_TRIM_THRESHOLD, kThresholdBytes);
}

namespace {

// Which threads OpenBLAS (when it is the BLAS loaded) runs on. The pthread build keeps a pool of
// its own beside LibTorch's OpenMP one, and the two fight for the cores (on the 2-core CPU a
// 6-step RL run took 52.8 s against 18.9 s with the OpenMP build); the build links the OpenMP
// one first when it is installed (CMakeLists.txt, scripts/setup.sh).
std::string blas_threading() {
  using GetParallel = int (*)();
  const auto get_parallel = reinterpret_cast<GetParallel>(dlsym(RTLD_DEFAULT, "openblas_get_parallel"));
  if (get_parallel == nullptr) return "";
  switch (get_parallel()) {
    case 0: return "OpenBLAS, sequential";
    case 1: return "OpenBLAS with its own pthreads";
    case 2: return "OpenBLAS on the OpenMP threads";
    default: return "OpenBLAS";
  }
}

}  // namespace

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
  const std::string blas = blas_threading();
  log::info("intra-op threads: ", threads, from_env ? " (from OMP_NUM_THREADS)" : " (from available cores)",
            blas.empty() ? "" : "; BLAS: " + blas);
  if (blas == "OpenBLAS with its own pthreads" && threads > 1)
    log::warn("OpenBLAS's pthread build competes with LibTorch's OpenMP threads for the cores; install ",
              "libopenblas0-openmp (scripts/setup.sh does) and rebuild to share one pool");
  return threads;
}

}  // namespace k2f
