// How a k2forge process uses the host: LibTorch's intra-op threads, the BLAS they call, and the
// allocator under CPU tensors. Debian's LibTorch starts with one thread; k2forge uses
// OMP_NUM_THREADS when set, else the cores it may run on divided among the ranks of this host.
#pragma once

namespace k2f {

// glibc returns every block above its mmap threshold (at most 32 MB when left dynamic) to the
// kernel on free, so each step's large activations and logits page-faulted back in: on the
// 2-core CPU, a third of an RL run's CPU time was kernel time. Raises the mmap and trim
// thresholds to 1 GB so freed tensors are reused from the heap. Leaves alone a process whose
// environment sets MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ or GLIBC_TUNABLES.
void configure_tensor_allocator();

// Sets at::set_num_threads and returns the value chosen (always >= 1).
int configure_intra_op_threads(int local_ranks = 1);

// Cores this process may run on (sched_getaffinity), at least 1.
int available_cores();

}  // namespace k2f
