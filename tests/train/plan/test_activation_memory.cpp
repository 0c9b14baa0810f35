// The activation model against a measurement: a counting CPU allocator wraps LibTorch's and tracks
// the bytes alive; what a tiny model's training forward (loss included) leaves allocated, after
// dropping the logits, is exactly what autograd keeps for the backward. The plan must be within
// 20% of it, with and without recomputation, for several configs. fp32 compute: under bf16 this
// codebase also keeps a bf16 copy of every weight per forward, which the cluster scheme (bf16
// weights) does not have.
#include <gtest/gtest.h>

#include <atomic>

#include <c10/core/CPUAllocator.h>

#include "base/torch_compat.h"
#include "model/kimi_model.h"
#include "train/losses.h"
#include "train/plan/memory_plan.h"
#include "train/plan/plan_configs.h"
#include "train/recompute.h"

namespace k2f::train::plan {
namespace {

class CountingAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t bytes) K2F_ALLOCATE_CONST override {
    auto* block = new Block{base_->allocate(bytes), bytes, this};
    live_ += static_cast<int64_t>(bytes);
    return {block->inner.get(), block, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }
#if K2F_ALLOCATOR_HAS_COPY_DATA
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#endif
  int64_t live() const { return live_; }

  // Installs itself as LibTorch's CPU allocator for the lifetime of the returned guard.
  struct Installed {
    explicit Installed(CountingAllocator& a) : previous(c10::GetCPUAllocator()) {
      a.base_ = previous;
      c10::SetCPUAllocator(&a, /*priority=*/0);
    }
    ~Installed() { c10::SetCPUAllocator(previous, 0); }
    c10::Allocator* previous;
  };

 private:
  struct Block {
    c10::DataPtr inner;
    size_t bytes;
    const CountingAllocator* owner;
  };
  static void release(void* context) {
    auto* block = static_cast<Block*>(context);
    block->owner->live_ -= static_cast<int64_t>(block->bytes);
    delete block;
  }
  c10::Allocator* base_ = nullptr;
  mutable std::atomic<int64_t> live_{0};
};

// Bytes a training forward of `config` keeps until its backward.
int64_t measured_activation_bytes(const model::ModelConfig& config, int64_t batch, int64_t tokens, bool recompute) {
  torch::manual_seed(3);
  model::KimiForCausalLM lm(config);
  model::init_weights(lm, 3);
  lm->compute_dtype = torch::kFloat32;
  if (recompute) lm->model->layer_runner = recomputing_layer_runner();
  const auto tokens_BT = torch::randint(config.vocab_size, {batch, tokens}, torch::kInt64);
  const auto targets_BT = torch::randint(config.vocab_size, {batch, tokens}, torch::kInt64);
  const auto mask_BT = torch::ones({batch, tokens});
  static CountingAllocator counting;  // outlives every tensor it allocated
  CountingAllocator::Installed installed(counting);
  const int64_t before = counting.live();
  auto logits_BTV = lm->forward(tokens_BT);
  const auto loss = train::masked_nll_sum(logits_BTV, targets_BT, mask_BT);
  logits_BTV = torch::Tensor();
  const int64_t kept = counting.live() - before;
  loss.backward();  // the graph was real
  return kept;
}

double planned_activation_bytes(const model::ModelConfig& config, int64_t batch, int64_t tokens, bool recompute) {
  PlanInputs in;
  in.model = config;
  in.seq_len = tokens;
  in.micro_batch_size = batch;
  in.global_batch_size = batch;
  in.recompute = recompute;
  in.bf16 = false;
  const auto stage = stage_layouts(config, in.layout, true).front();
  return stage_activation_bytes(in, stage);
}

TEST(ActivationMemory, WithinTwentyPercentOfWhatTheCpuForwardKeeps) {
  struct Case {
    int64_t batch, tokens;
  };
  for (const auto& config : k2f::testing::planner_configs()) {
    for (const Case& k : {Case{2, 16}, Case{1, 48}}) {
      for (bool recompute : {false, true}) {
        const double measured = static_cast<double>(measured_activation_bytes(config, k.batch, k.tokens, recompute));
        const double planned = planned_activation_bytes(config, k.batch, k.tokens, recompute);
        std::cout << "[ activations ] B " << k.batch << " T " << k.tokens << " recompute " << recompute
                  << " heads " << config.num_attention_heads << ": measured " << measured << " planned " << planned
                  << " ratio " << planned / measured << "\n";
        EXPECT_GT(measured, 0);
        EXPECT_NEAR(planned / measured, 1.0, 0.2) << "B " << k.batch << " T " << k.tokens << " recompute " << recompute;
      }
    }
  }
}

TEST(ActivationMemory, RecomputeKeepsOnlyLayerInputs) {
  const auto config = k2f::testing::planner_configs()[0];
  const double full = planned_activation_bytes(config, 2, 32, false);
  const double recomputed = planned_activation_bytes(config, 2, 32, true);
  EXPECT_LT(recomputed, full / 2);
}

}  // namespace
}  // namespace k2f::train::plan
