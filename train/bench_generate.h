// `k2forge bench generate`: greedy generation of a recipe's model with the MLA latent KV cache
// (absorbed and expanded forms) against recompute without a cache (a full forward over the whole
// prefix for every new token), in fp32 and bf16 compute, and the cache's bytes per token per layer
// against a cache of full per-head keys and values; and the routed experts packed to INT4 (K2
// Thinking's targets, through the W4A16 kernel) against bf16. Speeds are ratios inside one run.
#pragma once

#include <vector>

#include <torch/types.h>

#include "base/json_io.h"
#include "train/recipe.h"

namespace k2f::train {

struct GenerateBenchOptions {
  int64_t new_tokens = 512;    // generated per row (the first from the prefill's logits)
  int64_t prompt_tokens = 16;  // random prompt length
  int64_t batch = 1;           // rows generated together
  std::vector<torch::ScalarType> dtypes = {torch::kFloat32, torch::kBFloat16};  // compute dtypes timed
  bool int4 = true;  // also: routed experts packed to INT4 (W4A16) against the same model in bf16
};

Json bench_generate(const Recipe& recipe, const GenerateBenchOptions& options);

}  // namespace k2f::train
