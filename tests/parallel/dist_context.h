// The world of the mpirun tests (k2f_parallel_dist_tests): created once by dist_main.cpp from the
// launcher's environment before any test runs; every test is a collective over it.
#pragma once

#include "parallel/bootstrap.h"

namespace k2f::testing {

parallel::DistributedContext& dist();

}  // namespace k2f::testing
