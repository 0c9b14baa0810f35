// FLOPs against the real forward: a RecordFunction observer sums 2*m*n*k over every matrix
// product (mm, bmm, addmm, baddbmm) a tiny model's forward dispatches, which must equal the
// planner's executed forward FLOPs (full attention square, as the code computes it) exactly.
// Then the time model's invariants on a small cluster.
#include <gtest/gtest.h>

#include <ATen/record_function.h>

#include <cstring>

#include "model/kimi_model.h"
#include "model/param_count.h"
#include "train/plan/plan_configs.h"
#include "train/plan/step_time_estimate.h"

namespace k2f::train::plan {
namespace {

thread_local double g_matmul_flops = 0;

std::unique_ptr<at::ObserverContext> count_matmul(const at::RecordFunction& fn) {
  const char* name = fn.name();
  const auto inputs = fn.inputs();
  auto dims = [&](size_t i) { return inputs[i].toTensor().sizes(); };
  if (std::strcmp(name, "aten::mm") == 0) {
    g_matmul_flops += 2.0 * static_cast<double>(dims(0)[0] * dims(0)[1] * dims(1)[1]);
  } else if (std::strcmp(name, "aten::addmm") == 0) {
    g_matmul_flops += 2.0 * static_cast<double>(dims(1)[0] * dims(1)[1] * dims(2)[1]);
  } else if (std::strcmp(name, "aten::bmm") == 0) {
    g_matmul_flops += 2.0 * static_cast<double>(dims(0)[0] * dims(0)[1] * dims(0)[2] * dims(1)[2]);
  } else if (std::strcmp(name, "aten::baddbmm") == 0) {
    g_matmul_flops += 2.0 * static_cast<double>(dims(1)[0] * dims(1)[1] * dims(1)[2] * dims(2)[2]);
  }
  return nullptr;
}

double counted_forward_flops(const model::ModelConfig& config, int64_t batch, int64_t tokens) {
  torch::manual_seed(9);
  model::KimiForCausalLM lm(config);
  model::init_weights(lm, 9);
  const auto tokens_BT = torch::randint(config.vocab_size, {batch, tokens}, torch::kInt64);
  torch::NoGradGuard no_grad;
  g_matmul_flops = 0;
  const auto handle = at::addThreadLocalCallback(at::RecordFunctionCallback(&count_matmul).needsInputs(true));
  lm->forward(tokens_BT);
  at::removeCallback(handle);
  return g_matmul_flops;
}

PlanInputs inputs_for(const model::ModelConfig& config, int64_t tokens) {
  PlanInputs in;
  in.model = config;
  in.seq_len = tokens;
  return in;
}

TEST(StepTimeEstimate, ForwardFlopsEqualTheMatmulsOfTheRealForward) {
  const int64_t batch = 2, tokens = 12;
  for (const auto& config : k2f::testing::planner_configs()) {
    const double counted = counted_forward_flops(config, batch, tokens);
    const auto flops = flops_per_token(inputs_for(config, tokens));
    const double planned = flops.executed / 3 * static_cast<double>(batch * tokens);
    EXPECT_GT(counted, 0);
    EXPECT_DOUBLE_EQ(planned, counted) << "layers " << config.num_hidden_layers << " shared " << config.n_shared_experts;
    // The useful forward differs only by the causal half of the attention square.
    double attention_full = 0;
    for (int64_t l = 0; l < config.num_hidden_layers; ++l)
      attention_full += model::layer_forward_flops(config, l, static_cast<double>(tokens)).attention;
    const double causal = attention_full * (static_cast<double>(tokens + 1) / 2) / static_cast<double>(tokens);
    EXPECT_NEAR(flops.forward, flops.executed / 3 - attention_full + causal, 1e-6 * flops.forward);
    EXPECT_DOUBLE_EQ(flops.backward, 2 * flops.forward);
  }
}

TEST(StepTimeEstimate, RecomputeAddsOneLayerForward) {
  auto in = inputs_for(k2f::testing::planner_configs()[0], 32);
  const auto plain = flops_per_token(in);
  in.recompute = true;
  const auto recomputed = flops_per_token(in);
  EXPECT_EQ(plain.recompute, 0);
  EXPECT_DOUBLE_EQ(recomputed.executed - plain.executed, recomputed.recompute);
  EXPECT_DOUBLE_EQ(recomputed.recompute,
                   plain.executed / 3 - model::head_forward_flops(in.model));
}

TEST(StepTimeEstimate, TimeAddsUpAndFasterNetworksNeverSlowDown) {
  auto in = inputs_for(model::kimi_k2_config(), 4096);
  in.layout.pp = 4;
  in.layout.dp = 16;
  in.layout.ep = 8;
  in.layout.zero1 = true;
  in.num_gpus = 64;
  in.micro_batch_size = 1;
  in.global_batch_size = 16 * 8;
  in.recompute = true;
  in.cluster = ClusterSpec::preset_named("h100");
  in.cluster->nodes = 8;
  const auto t = estimate_step_time(in);
  EXPECT_NEAR(t.step_s, t.compute_s + t.bubble_s + t.ep_exposed_s + t.pp_exposed_s + t.dp_s, 1e-9 * t.step_s);
  EXPECT_NEAR(t.bubble_s / t.compute_s, 3.0 / 8.0, 1e-9);  // (pp-1) / micro-batches
  EXPECT_GT(t.comm.ep_all_to_all, 0);
  EXPECT_GT(t.comm.dp_reduce_scatter, 0);
  EXPECT_GT(t.mfu, 0);
  EXPECT_LT(t.mfu, in.cluster->gemm_efficiency);
  in.cluster->inter_node_gbps *= 4;
  EXPECT_LE(estimate_step_time(in).step_s, t.step_s);
}

}  // namespace
}  // namespace k2f::train::plan
