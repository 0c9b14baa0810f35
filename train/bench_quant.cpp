#include "train/bench_quant.h"

#include <ATen/Parallel.h>
#include <torch/nn/functional/linear.h>

#include <algorithm>
#include <functional>
#include <vector>

#include "base/error.h"
#include "base/stopwatch.h"
#include "quant/int4_pack.h"
#include "quant/int4_quantizer.h"
#include "quant/w4a16.h"
#include "train/bench_train.h"

namespace k2f::train {

namespace {

// K2's routed expert: gate/up project hidden 7168 -> moe_intermediate 2048, down 2048 -> 7168.
constexpr int64_t kK2Hidden = 7168;
constexpr int64_t kK2ExpertWidth = 2048;

// The median seconds of one call, over repetitions filling at least min_seconds (at least 5).
double median_seconds(const std::function<void()>& call, double min_seconds) {
  call();  // warm-up: first-touch pages, thread pool start
  std::vector<double> times;
  const auto start = SteadyClock::now();
  while (times.size() < 5 || seconds_since(start) < min_seconds) {
    const auto t = SteadyClock::now();
    call();
    times.push_back(seconds_since(t));
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

quant::PackedInt4Weight pack_expert(const torch::Tensor& w_OI_bf16) {
  const auto q = quant::quantize(w_OI_bf16, quant::QuantOptions{});
  return {quant::pack_int4(q.codes_OI), q.scales_OG, w_OI_bf16.size(1), quant::QuantOptions{}.group_size};
}

Json bench_pack(double min_seconds) {
  torch::manual_seed(0);
  const auto w = (torch::randn({kK2ExpertWidth, kK2Hidden}) * 0.02).to(torch::kBFloat16);
  const double seconds = median_seconds([&] { pack_expert(w); }, min_seconds);
  const double bytes = static_cast<double>(w.numel() * w.element_size());
  return {{"shape", {kK2ExpertWidth, kK2Hidden}}, {"seconds", seconds}, {"gb_per_s_of_bf16_input", bytes / seconds / 1e9}};
}

// One shape and batch: bf16 linear (LibTorch) against the W4A16 linear with bf16 activations.
Json bench_linear(int64_t in_features, int64_t out_features, int64_t batch, double min_seconds) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(1);
  const auto w_bf16 = (torch::randn({out_features, in_features}) * 0.02).to(torch::kBFloat16);
  const auto packed = pack_expert(w_bf16);
  const auto x = torch::randn({batch, in_features}).to(torch::kBFloat16);
  const double bf16 = median_seconds([&] { torch::nn::functional::linear(x, w_bf16); }, min_seconds);
  const double int4 = median_seconds([&] { quant::w4a16_linear(x, packed); }, min_seconds);
  const double flops = 2.0 * static_cast<double>(batch * in_features * out_features);
  return {{"in_features", in_features},
          {"out_features", out_features},
          {"batch", batch},
          {"bf16_ms", bf16 * 1e3},
          {"int4_ms", int4 * 1e3},
          {"bf16_gflops", flops / bf16 / 1e9},
          {"int4_gflops", flops / int4 / 1e9},
          {"weight_bytes_bf16", w_bf16.numel() * w_bf16.element_size()},
          {"weight_bytes_int4", packed.bytes()},
          {"int4_speedup", bf16 / int4}};
}

double seconds_per_step(const Recipe& recipe, int64_t steps) {
  const auto report = bench_train(recipe, TrainBenchOptions{steps});
  check(report.is_object(), "bench quant: the training benchmark gave no report");
  return report["seconds_per_step"].get<double>();
}

}  // namespace

Json bench_quant(const Recipe& without_qat, const Recipe& with_qat, const QuantBenchOptions& options) {
  check(options.train_steps > 0, "bench quant: --steps (", options.train_steps, ") must be positive");
  Json linears = Json::array();
  for (const auto& [in, out] : {std::pair{kK2Hidden, kK2ExpertWidth}, std::pair{kK2ExpertWidth, kK2Hidden}})
    // Decoding (1), a small decode batch (16), and prefill or batched RL sampling (128).
    for (const int64_t batch : {1, 16, 128}) linears.push_back(bench_linear(in, out, batch, options.min_seconds));
  // Runs in the order plain, QAT, QAT, plain: a drift in the machine's speed (other tenants,
  // clocks) then weighs on both sides alike instead of reading as QAT's overhead.
  const double plain_first = seconds_per_step(without_qat, options.train_steps);
  const double qat_first = seconds_per_step(with_qat, options.train_steps);
  const double qat_second = seconds_per_step(with_qat, options.train_steps);
  const double plain_second = seconds_per_step(without_qat, options.train_steps);
  const double plain = (plain_first + plain_second) / 2, qat = (qat_first + qat_second) / 2;
  return {{"benchmark", "quant"},
          {"threads", at::get_num_threads()},
          {"pack", bench_pack(options.min_seconds)},
          {"linear", linears},
          {"qat_step",
           {{"recipe", with_qat.source()},
            {"steps", options.train_steps},
            {"order", "without, with, with, without QAT; the figures are means of the two runs"},
            {"runs_seconds_per_step_without_qat", {plain_first, plain_second}},
            {"runs_seconds_per_step_with_qat", {qat_first, qat_second}},
            {"seconds_per_step_without_qat", plain},
            {"seconds_per_step_with_qat", qat},
            {"overhead", qat / plain - 1.0}}}};
}

}  // namespace k2f::train
