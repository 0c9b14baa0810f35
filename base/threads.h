// Intra-op thread count for LibTorch. Debian's LibTorch starts with one thread; k2forge uses
// OMP_NUM_THREADS when set, else the cores it may run on divided among the ranks of this host.
#pragma once

namespace k2f {

// Sets at::set_num_threads and returns the value chosen (always >= 1).
int configure_intra_op_threads(int local_ranks = 1);

// Cores this process may run on (sched_getaffinity), at least 1.
int available_cores();

}  // namespace k2f
