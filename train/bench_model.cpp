#include "train/bench_model.h"

#include <ATen/Parallel.h>

#include <chrono>

#include "base/device.h"
#include "base/log.h"
#include "base/matmul.h"
#include "base/stopwatch.h"
#include "model/kimi_model.h"
#include "model/param_count.h"

namespace k2f::train {
namespace {

using Clock = std::chrono::steady_clock;


// One training step's compute: forward, mean next-token NLL, backward.
void forward_backward(model::KimiForCausalLM& lm, const torch::Tensor& tokens_BT) {
  lm->zero_grad();
  const auto logprobs = model::next_token_logprobs(lm->forward(tokens_BT), tokens_BT);
  (-logprobs.mean()).backward();
}

Json bench_dtype(const model::ModelConfig& config, torch::ScalarType dtype, const torch::Tensor& tokens_BT,
                 int64_t steps, uint64_t seed, double flops_per_token) {
  model::KimiForCausalLM lm(config);
  model::init_weights(lm, seed);
  lm->compute_dtype = dtype;
  forward_backward(lm, tokens_BT);  // warm-up: allocator, oneDNN kernels
  const auto start = Clock::now();
  for (int64_t s = 0; s < steps; ++s) forward_backward(lm, tokens_BT);
  const double elapsed = seconds_since(start);
  const double tokens_per_s = static_cast<double>(tokens_BT.numel() * steps) / elapsed;
  return {{"seconds_per_step", elapsed / steps},
          {"tokens_per_s", tokens_per_s},
          {"model_gflops", tokens_per_s * flops_per_token / 1e9}};
}

}  // namespace

double measure_bf16_gemm_flops(const c10::Device& device) {
  torch::NoGradGuard no_grad;
  // A GPU needs a large product to reach its rate; this CPU's rate is already reached at 4096x1024^2.
  const int64_t m = device.is_cuda() ? 8192 : 4096, k = device.is_cuda() ? 8192 : 1024, n = k;
  const auto a = torch::randn({m, k}).to(device, torch::kBFloat16);
  const auto b = torch::randn({k, n}).to(device, torch::kBFloat16);
  // k2f::matmul: the product the model runs (fp32 sums where this CPU's LibTorch bf16 GEMM lacks them).
  auto c = k2f::matmul(a, b);  // warm-up
  synchronize(device);
  double best = 1e30;
  for (int trial = 0; trial < 5; ++trial) {
    const auto start = Clock::now();
    for (int r = 0; r < 4; ++r) c = k2f::matmul(a, b);
    synchronize(device);
    best = std::min(best, seconds_since(start) / 4);
  }
  return 2.0 * m * n * k / best;
}

Json bench_model(const Recipe& recipe, const ModelBenchOptions& options) {
  const auto config = model_config_from_recipe(recipe);
  const int64_t seq_len = recipe.get_int("train.seq_len");
  const int64_t batch = options.batch > 0 ? options.batch : recipe.get_int("train.micro_batch_size");
  const auto seed = static_cast<uint64_t>(recipe.get_int("train.seed"));
  torch::manual_seed(seed);
  const auto tokens_BT = torch::randint(config.vocab_size, {batch, seq_len}, torch::kInt64);
  const double training_flops_per_token = 3.0 * model::forward_flops_per_token(config, seq_len);

  const double gemm_flops = measure_bf16_gemm_flops();
  log::info("bench model: bf16 GEMM ", gemm_flops / 1e9, " GFLOP/s; timing fp32");
  Json fp32 = bench_dtype(config, torch::kFloat32, tokens_BT, options.steps, seed, training_flops_per_token);
  log::info("bench model: timing bf16");
  Json bf16 = bench_dtype(config, torch::kBFloat16, tokens_BT, options.steps, seed, training_flops_per_token);
  const auto counts = model::count_parameters(config);
  return {{"benchmark", "model"},
          {"recipe", recipe.source()},
          {"threads", at::get_num_threads()},
          {"total_params", counts.total()},
          {"active_params", counts.active()},
          {"batch", batch},
          {"seq_len", seq_len},
          {"steps", options.steps},
          {"training_gflop_per_token", training_flops_per_token / 1e9},
          {"gemm_bf16_gflops", gemm_flops / 1e9},
          {"fp32", fp32},
          {"bf16", bf16},
          {"bf16_speedup", bf16["tokens_per_s"].get<double>() / fp32["tokens_per_s"].get<double>()},
          {"bf16_mfu", bf16["model_gflops"].get<double>() * 1e9 / gemm_flops}};
}

}  // namespace k2f::train
