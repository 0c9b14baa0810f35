// `k2forge bench train`: whole optimizer steps of a recipe's model (data loading from an HDF5
// store, forward, backward, clipping, MuonClip, QK-Clip, bias update) with the time split and
// MFU against the bf16 GEMM rate measured in the same run. Under mpirun it runs the recipe's
// parallel layout and splits each rank's step into compute, communication and pipeline wait.
#pragma once

#include "base/json_io.h"
#include "train/recipe.h"

namespace k2f::train {

struct TrainBenchOptions {
  int64_t steps = 3;  // timed steps after one warm-up step
};

// The report on rank 0; null on the other ranks.
Json bench_train(const Recipe& recipe, const TrainBenchOptions& options);

}  // namespace k2f::train
