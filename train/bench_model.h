// `k2forge bench model`: forward+backward throughput of a recipe's model in fp32 and in bf16
// compute (fp32 masters), with model FLOP/s and this machine's measured bf16 GEMM rate from the
// same run, so the figures are ratios inside one run rather than absolute claims.
#pragma once

#include <c10/core/Device.h>

#include "base/json_io.h"
#include "train/recipe.h"

namespace k2f::train {

struct ModelBenchOptions {
  int64_t steps = 3;   // timed steps per dtype (after one warm-up step)
  int64_t batch = 0;   // sequences per step; 0: train.micro_batch_size
};

Json bench_model(const Recipe& recipe, const ModelBenchOptions& options);

// bf16 GEMM rate of `device` in FLOP/s, best of several ([4096,1024] x [1024,1024] on the CPU,
// 8192^3 on a GPU).
double measure_bf16_gemm_flops(const c10::Device& device = c10::kCPU);

}  // namespace k2f::train
