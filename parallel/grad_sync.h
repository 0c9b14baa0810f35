// Data-parallel gradient sync: gradients are flattened into buckets of about 25 MB per dtype (a few
// large all-reduces instead of one per tensor), summed over the group, scaled and copied back.
// Routed expert weights are replicated only over the expert-data-parallel group (ranks holding the
// same experts); every other parameter over the whole dp group. Parameters are chosen by HF name.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "parallel/comm.h"

namespace k2f::parallel {

struct GradSyncOptions {
  int64_t bucket_bytes = 25 << 20;
  double scale = 1.0;  // applied after the sum (e.g. 1 / global token count, or 1 / dp)
};

using NamedParameters = NamedTensors;

// True for "...mlp.experts.<e>...." (a routed expert), false for shared experts, router, attention.
bool is_routed_expert_parameter(const std::string& hf_name);

// Sums the gradients of `parameters` over `group` and multiplies them by options.scale. A missing
// gradient counts as zeros (an expert that received no tokens here may have received some elsewhere),
// so every rank must pass the same parameters in the same order. Collective over `group`.
void all_reduce_gradients(const std::vector<torch::Tensor>& parameters, const Group& group,
                          const GradSyncOptions& options = {});

// Routed experts over `expert_dp_group`, everything else over `dp_group`, in two collectives.
void sync_gradients(const NamedParameters& parameters, const Group& dp_group, const Group& expert_dp_group,
                    const GradSyncOptions& options = {});

}  // namespace k2f::parallel
