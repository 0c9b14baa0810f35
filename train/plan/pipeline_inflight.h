// How many micro-batches' activations a pipeline stage holds at its peak, and the idle share of a
// step, for the schedules of parallel.schedule. In units of one micro-batch through all of the
// stage's layers. GPipe runs every forward first (m in flight); 1F1B keeps pp - s on stage s;
// interleaved 1F1B with v chunks warms up (pp-s-1)*2 + (v-1)*pp + 1 chunk passes (Megatron-LM),
// i.e. pp*(1 + (pp-1)/(pp*v)) on stage 0, and cuts the bubble to (pp-1)/v.
#pragma once

#include <cstdint>

#include "parallel/mesh.h"

namespace k2f::train::plan {

// Micro-batches in flight on `stage` with `num_micro_batches` per step.
double inflight_micro_batches(const parallel::ParallelLayout& layout, int64_t stage, int64_t num_micro_batches);
// Pipeline fill and drain, in micro-batch times of one stage: (pp-1), or (pp-1)/v interleaved.
double bubble_micro_batches(const parallel::ParallelLayout& layout);

}  // namespace k2f::train::plan
