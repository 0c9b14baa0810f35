// `k2forge bench rollout`: agentic rollouts of a model on an RL recipe's environment, the same
// episodes (tasks, per-episode seeds, tools, budget) batched two ways in one run: rounds (every
// round of a batch waits for its longest turn and prefills every context again, the former way)
// and continuous (model::SlotDecoder: each episode keeps its slot's latent cache across its tool
// rounds; an episode that ends hands its slot to the next at once). Prints sampled tokens per
// second of each, their ratio, and whether every episode sampled the same tokens both ways.
#pragma once

#include <string>

#include "base/json_io.h"
#include "train/rl/rl_options.h"

namespace k2f::train {

struct RolloutBenchOptions {
  std::string model;      // "": the recipe's train.init_from
  int64_t episodes = 64;  // training tasks of the environment, in order (mixed lengths with a curriculum)
  int64_t slots = 16;     // episodes decoded at once (rounds: the batch size)
};

Json bench_rollout(const rl::RlOptions& options, const RolloutBenchOptions& bench);

}  // namespace k2f::train
