// The communication vocabulary of parallel/: a process group handle and blocking collectives.
// LibTorch 1.13 calls a backend (Gloo, NCCL) a c10d::ProcessGroup; 2.x calls it c10d::Backend and
// wraps it. Both expose the same collectives, so k2forge holds the backend and names it `Group`.
// Every collective here takes tensors on any device: those not on the group's device (host-side
// counts and messages on an NCCL group, GPU tensors on a Gloo group) travel through a copy there
// and come back where they were, so no caller needs to know which backend it talks to.
// Legend: R rows exchanged, D hidden.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/types.h>

#include "base/torch_compat.h"

#if K2F_TORCH_AT_LEAST(2, 0)
#include <torch/csrc/distributed/c10d/Backend.hpp>
#endif

namespace k2f::parallel {

#if K2F_TORCH_AT_LEAST(2, 0)
using GroupBase = c10d::Backend;
#else
using GroupBase = c10d::ProcessGroup;
#endif
using Group = c10::intrusive_ptr<GroupBase>;  // null: this rank is not a member

// Where `group`'s backend takes its tensors: the current CUDA device for NCCL, the CPU otherwise.
c10::Device group_device(const Group& group);

// `tensor` on `group`'s device and contiguous: itself when it is both already, else a copy.
torch::Tensor on_group_device(const Group& group, const torch::Tensor& tensor);

// Blocks until `work` is done; the time adds to blocked_seconds().
void wait_for(const c10::intrusive_ptr<c10d::Work>& work);
// Seconds this process has spent blocked in parallel/'s communication so far (every wait above and
// below), for the compute / communication split of metrics and benchmarks.
double blocked_seconds();

// Rows [R_in, ...] split over the group's ranks by `send_rows[r]`; returns the rows received,
// `recv_rows[r]` from each rank r, in rank order. Any dtype (sent as bytes); no autograd.
torch::Tensor all_to_all_rows(const Group& group, const torch::Tensor& input, const std::vector<int64_t>& send_rows,
                              const std::vector<int64_t>& recv_rows);

// In-place sum over the group; blocks until done.
void all_reduce_sum(const Group& group, torch::Tensor& tensor);

// In-place element-wise maximum over the group; blocks until done.
void all_reduce_max(const Group& group, torch::Tensor& tensor);

// In place: every rank's `tensor` (same shape and dtype on all) becomes group rank `root`'s.
void broadcast(const Group& group, torch::Tensor& tensor, int root);

// Every rank's `tensor` (same shape and dtype on all), in group-rank order; blocks until done.
std::vector<torch::Tensor> all_gather(const Group& group, const torch::Tensor& tensor);

// Every rank's `text` (any lengths), in group-rank order; blocks until done.
std::vector<std::string> all_gather_strings(const Group& group, const std::string& text);

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Every rank's named tensors collected on group rank 0, in group-rank order; a name already
// collected from a lower rank is skipped. Returns the list on rank 0 and an empty one elsewhere.
// Collective (names, dtypes and shapes may differ between ranks).
NamedTensors gather_named_tensors(const Group& group, const NamedTensors& local);

// Point to point (pipeline stages). A send is posted and returns at once: wait on the result
// before reusing `tensor` (the work keeps it alive). A receive blocks until `tensor` (contiguous,
// of the sent shape and dtype) is filled. `peer` is a rank of `group`; `tag` pairs a send with
// its receive when several are in flight between the same two ranks.
c10::intrusive_ptr<c10d::Work> send_async(const Group& group, const torch::Tensor& tensor, int peer, int tag);
void receive(const Group& group, torch::Tensor& tensor, int peer, int tag);

}  // namespace k2f::parallel
