// `k2forge bench quant`: what INT4 costs and buys on this machine. Quantise+pack throughput (GB/s
// of bf16 input), the W4A16 linear against a bf16 linear at K2's routed-expert shapes (7168 -> 2048
// and 2048 -> 7168, batch 1 and 16), and whole training steps with INT4 QAT against the same steps
// without it (bench_moe by default), all timed in one run so the ratios compare like with like.
#pragma once

#include "base/json_io.h"
#include "train/recipe.h"

namespace k2f::train {

struct QuantBenchOptions {
  int64_t train_steps = 2;   // timed training steps per configuration (after one warm-up step)
  double min_seconds = 0.5;  // least time spent on each kernel measurement
};

// `without_qat` and `with_qat`: one recipe with quant.qat false and true.
Json bench_quant(const Recipe& without_qat, const Recipe& with_qat, const QuantBenchOptions& options);

}  // namespace k2f::train
