// Where tensors live: "cpu", "cuda" or "cuda:N" from a recipe or a flag, checked against what this
// build and machine have, so a CUDA recipe on a CPU build fails with a message, not a crash. The
// only place (with torch_compat.h) that knows whether k2forge was built for CUDA.
#pragma once

#include <string>

#include <c10/core/Device.h>

namespace k2f {

// Parses `name` ("cpu", "cuda", "cuda:N"); `what` names its source (e.g. "train.device") in errors.
// A CUDA device needs a CUDA build and a visible GPU of that index.
c10::Device parse_device(const std::string& name, const std::string& what);

// The device for local rank `local_rank` of a host: cuda:(local_rank % GPUs) for a CUDA device,
// `device` itself otherwise.
c10::Device device_for_local_rank(const c10::Device& device, int local_rank);

// Waits for the work queued on `device` (a no-op on the CPU): timings around GPU work need it.
void synchronize(const c10::Device& device);

// True when this k2forge was built against a CUDA LibTorch (K2F_CUDA).
bool built_with_cuda();

// Number of visible CUDA devices (0 on CPU builds).
int cuda_device_count();

}  // namespace k2f
