// main of the mpirun tests: joins the world (OpenMPI / torchrun / Slurm variables, short timeout
// so a broken collective fails instead of hanging), runs the tests on every rank, and lets only
// rank 0 print the gtest report (failures on other ranks still print and still fail the run).
#include <gtest/gtest.h>

#include <iostream>

#include "base/log.h"
#include "dist_context.h"

namespace k2f::testing {

namespace {
parallel::DistributedContext* g_context = nullptr;
}

parallel::DistributedContext& dist() { return *g_context; }

}  // namespace k2f::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  try {
    k2f::parallel::DistOptions options;
    options.timeout_s = 120;
    static auto context = k2f::parallel::init_distributed(k2f::parallel::detect_launch_env(), options);
    k2f::testing::g_context = &context;
  } catch (const std::exception& e) {
    std::cerr << "k2f_parallel_dist_tests: " << e.what() << "\n";
    return 1;
  }
  k2f::log::quiet() = true;
  if (k2f::testing::dist().rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int failed = RUN_ALL_TESTS();
  if (failed != 0) std::cerr << "rank " << k2f::testing::dist().rank() << ": tests failed\n";
  return failed;
}
