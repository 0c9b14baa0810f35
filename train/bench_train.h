// `k2forge bench train`: whole optimizer steps of a recipe's model (data loading from an HDF5
// store, forward, backward, clipping, MuonClip, QK-Clip, bias update) with the time split and
// MFU against the bf16 GEMM rate measured in the same run. Under mpirun it runs the recipe's
// parallel layout and splits each rank's step into compute, communication and pipeline wait. With
// a LoRA rank it also times LoRA fine-tuning of the same model on its INT4 export, in the same run.
#pragma once

#include "base/json_io.h"
#include "train/recipe.h"

namespace k2f::train {

struct TrainBenchOptions {
  int64_t steps = 3;  // timed steps after one warm-up step
  // > 0: also time LoRA steps of this rank on the same model, seeded and exported as INT4 (K2
  // Thinking's scheme: routed experts packed) into the scratch directory, beside the full steps.
  int64_t lora_rank = 0;
};

// The report on rank 0; null on the other ranks.
Json bench_train(const Recipe& recipe, const TrainBenchOptions& options);

}  // namespace k2f::train
