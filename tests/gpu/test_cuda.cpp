// The CUDA build on a GPU (label gpu; every test skips where no GPU is visible): the model, the
// grouped expert GEMM, a packed INT4 linear, the KV cache, the trainer and an NCCL group compute on CUDA what they
// compute on the CPU. fp32 on both sides (TF32 is off by default), so tolerances stay tight.
#include <gtest/gtest.h>

#include <torch/csrc/autograd/autograd.h>

#include "base/device.h"
#include "base/torch_compat.h"
#include "model/experts.h"
#include "model/kimi_model.h"
#include "parallel/bootstrap.h"
#include "parallel/comm.h"
#include "quant/int4_pack.h"
#include "quant/int4_quantizer.h"
#include "quant/w4a16.h"
#include "tests/model/tiny_config.h"
#include "tests/parallel/collective_checks.h"
#include "tests/train/trainer_fixture.h"
#include "train/trainer.h"

namespace k2f {
namespace {

#define K2F_REQUIRE_GPU() \
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device visible (built_with_cuda=" << built_with_cuda() << ")"

const c10::Device kGpu(c10::kCUDA, 0);

double max_relative_difference(const torch::Tensor& a, const torch::Tensor& b) {
  const auto a64 = a.detach().cpu().to(torch::kFloat64), b64 = b.detach().cpu().to(torch::kFloat64);
  return ((a64 - b64).abs().max() / (b64.abs().max() + 1e-12)).item<double>();
}

model::ForwardInputs random_inputs(int64_t vocab, int64_t batch, int64_t tokens, uint64_t seed) {
  torch::manual_seed(seed);
  return model::ForwardInputs{torch::randint(vocab, {batch, tokens}, torch::kInt64), torch::Tensor(), torch::Tensor()};
}

model::ForwardInputs on(const model::ForwardInputs& in, const c10::Device& device) {
  return model::ForwardInputs{in.tokens_BT.to(device), in.positions_BT, in.segment_ids_BT};
}

// The tiny model twice from one seed: on the CPU and on the GPU.
struct Twins {
  model::KimiForCausalLM cpu{nullptr}, gpu{nullptr};
};
Twins cpu_and_gpu_models(const model::ModelConfig& config, uint64_t seed) {
  Twins twins{model::KimiForCausalLM(config), model::KimiForCausalLM(config)};
  model::init_weights(twins.cpu, seed);
  model::init_weights(twins.gpu, seed);
  twins.gpu->to(kGpu);
  return twins;
}

TEST(Cuda, ModelForwardAndGradientsMatchTheCpuInFp32) {
  K2F_REQUIRE_GPU();
  auto config = testing::tiny_config();
  auto [cpu, gpu] = cpu_and_gpu_models(config, 7);
  const auto inputs = random_inputs(config.vocab_size, 2, 12, 3);
  const auto logits_cpu = cpu->forward(inputs);
  const auto logits_gpu = gpu->forward(on(inputs, kGpu));
  ASSERT_TRUE(logits_gpu.is_cuda());
  EXPECT_LT(max_relative_difference(logits_gpu, logits_cpu), 1e-5);
  logits_cpu.pow(2).mean().backward();
  logits_gpu.pow(2).mean().backward();
  const auto pc = cpu->named_parameters(), pg = gpu->named_parameters();
  for (const auto& item : pc) {
    const auto& g = pg[item.key()].grad();
    if (!item.value().grad().defined()) continue;
    ASSERT_TRUE(g.defined()) << item.key();
    EXPECT_LT(max_relative_difference(g, item.value().grad()), 1e-4) << item.key();
  }
}

// A packed INT4 linear (LoRA's frozen K2 Thinking experts) on the GPU: dequantised per product,
// equal to the CPU kernel in fp32, with the same input gradient.
TEST(Cuda, PackedInt4LinearMatchesTheCpuKernelWithItsInputGradient) {
  K2F_REQUIRE_GPU();
  torch::manual_seed(5);
  const int64_t O = 96, I = 128, group = 32;
  const auto q = quant::quantize(torch::randn({O, I}) * 0.1, quant::QuantOptions{group, quant::Grid::k2});
  const quant::PackedInt4Weight cpu_weight{quant::pack_int4(q.codes_OI), q.scales_OG, I, group};
  const quant::PackedInt4Weight gpu_weight{cpu_weight.packed_OW.to(kGpu), cpu_weight.scales_OG.to(kGpu), I, group};
  const auto x_cpu = torch::randn({3, 7, I}).requires_grad_();
  const auto x_gpu = x_cpu.detach().to(kGpu).requires_grad_();
  const auto y_cpu = quant::w4a16_linear(x_cpu, cpu_weight), y_gpu = quant::w4a16_linear(x_gpu, gpu_weight);
  ASSERT_TRUE(y_gpu.is_cuda());
  EXPECT_LT(max_relative_difference(y_gpu, y_cpu), 1e-5);
  const auto grad_y = torch::randn({3, 7, O});
  y_cpu.backward(grad_y);
  y_gpu.backward(grad_y.to(kGpu));
  EXPECT_LT(max_relative_difference(x_gpu.grad(), x_cpu.grad()), 1e-5);
}

TEST(Cuda, GroupedExpertGemmMatchesOneGemmPerExpertInBf16) {
  K2F_REQUIRE_GPU();
  const int64_t D = 64, I = 32, E = 6, N = 40, K = 2;
  model::RoutedExperts experts(D, I, 0, E);
  experts->to(kGpu);
  torch::manual_seed(11);
  const auto x_ND = torch::randn({N, D}, torch::TensorOptions().device(kGpu)).to(torch::kBFloat16).requires_grad_();
  auto idx_NK = torch::randint(E - 1, {N, K}, torch::TensorOptions().dtype(torch::kInt64).device(kGpu));  // expert E-1 gets no token
  idx_NK.select(1, 1).copy_((idx_NK.select(1, 0) + 1) % (E - 1));
  const auto weight_NK = torch::rand({N, K}, torch::TensorOptions().device(kGpu));
  std::cout << "grouped GEMM available: " << K2F_HAS_GROUPED_MM << ", used: " << experts->runs_grouped_gemm(x_ND) << "\n";
  EXPECT_EQ(experts->runs_grouped_gemm(x_ND), static_cast<bool>(K2F_HAS_GROUPED_MM));
  const auto grouped = experts->forward_grouped(x_ND, idx_NK, weight_NK);
  const auto grad_grouped = torch::autograd::grad({grouped.to(torch::kFloat32).pow(2).sum()}, {x_ND})[0];
  experts->use_grouped_gemm = false;
  const auto reference = experts->forward_grouped(x_ND, idx_NK, weight_NK);
  const auto grad_reference = torch::autograd::grad({reference.to(torch::kFloat32).pow(2).sum()}, {x_ND})[0];
  EXPECT_LT(max_relative_difference(grouped, reference), 2e-2);
  EXPECT_LT(max_relative_difference(grad_grouped, grad_reference), 2e-2);
}

TEST(Cuda, LatentKvCacheDecodeMatchesTheCpu) {
  K2F_REQUIRE_GPU();
  auto config = testing::tiny_config();
  auto [cpu, gpu] = cpu_and_gpu_models(config, 5);
  torch::NoGradGuard no_grad;
  const auto tokens_BT = random_inputs(config.vocab_size, 2, 10, 9).tokens_BT;
  auto cache_cpu = cpu->make_cache(2, 16);
  auto cache_gpu = gpu->make_cache(2, 16);
  const auto prefill_cpu = cpu->forward_cached(tokens_BT.narrow(1, 0, 6), cache_cpu);
  const auto prefill_gpu = gpu->forward_cached(tokens_BT.narrow(1, 0, 6).to(kGpu), cache_gpu);
  EXPECT_LT(max_relative_difference(prefill_gpu, prefill_cpu), 1e-5);
  for (int64_t t = 6; t < 10; ++t) {
    const auto step_cpu = cpu->forward_cached(tokens_BT.narrow(1, t, 1), cache_cpu);
    const auto step_gpu = gpu->forward_cached(tokens_BT.narrow(1, t, 1).to(kGpu), cache_gpu);
    EXPECT_LT(max_relative_difference(step_gpu, step_cpu), 1e-5) << "decode step " << t;
  }
}

TEST(Cuda, TrainerStepsOnTheGpuFollowTheCpuRun) {
  K2F_REQUIRE_GPU();
  testing::ScratchDir dir("cuda-trainer");
  train::TrainerRunOptions quiet;
  quiet.quiet_console = true;
  auto options = testing::tiny_train_options(dir, "cpu");
  options.steps = 3;
  const auto cpu_history = train::Trainer(options, quiet).run();
  options.run_dir = dir / "gpu";
  options.device = "cuda";
  train::Trainer gpu(options, quiet);
  EXPECT_TRUE(gpu.model()->lm_head->weight.is_cuda());
  const auto gpu_history = gpu.run();
  ASSERT_EQ(gpu_history.size(), cpu_history.size());
  for (size_t i = 0; i < cpu_history.size(); ++i) {
    EXPECT_NEAR(gpu_history[i].loss, cpu_history[i].loss, 1e-4 * std::abs(cpu_history[i].loss)) << "step " << i + 1;
  }
  // The checkpoint written from CUDA tensors resumes on the CPU.
  options.device = "cpu";
  options.steps = 4;
  train::Trainer resumed(options, quiet);
  EXPECT_EQ(resumed.completed_steps(), 3);
}

// The world group is Gloo; the mesh's groups are NCCL. Each collective takes GPU tensors and host
// tensors (counts, messages, checkpoint pieces) on either backend and returns them where they were.
TEST(Cuda, NcclGroupsTakeHostAndGpuTensors) {
  K2F_REQUIRE_GPU();
  parallel::DistOptions options;
  options.device = "cuda";
  options.configure_threads = false;
  auto context = parallel::init_distributed(parallel::LaunchEnv{}, options);
  EXPECT_EQ(context.backend, "nccl");
  EXPECT_EQ(context.world->getBackendName(), "gloo");
  const auto nccl = context.new_group({0}, "mesh");
  EXPECT_EQ(nccl->getBackendName(), "nccl");
  EXPECT_EQ(parallel::group_device(nccl), kGpu);
  for (const auto& group : {nccl, context.world}) {
    SCOPED_TRACE(group->getBackendName());
    testing::expect_collectives_keep_values_and_device(group, kGpu);
    testing::expect_collectives_keep_values_and_device(group, c10::Device(c10::kCPU));
  }
}

}  // namespace
}  // namespace k2f
