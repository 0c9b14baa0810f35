// quant/lora.cpp: an adapted Linear computes W x + s B A x (PEFT's formula, written out here), a
// fresh adapter (B = 0) leaves the model's logits bit for bit, only A and B receive gradients and
// training leaves every base byte as it was, the adapter runs on top of fake-quantised and packed
// INT4 bases, the quantisation-aware merge computes with the weight the merged export stores, the
// default targets are attention, shared experts and dense MLPs, and bad options name the key.
#include <gtest/gtest.h>

#include <cmath>

#include <torch/optim/adam.h>

#include "model/kimi_model.h"
#include "model/tiny_config.h"
#include "quant/lora.h"
#include "quant/qat.h"
#include "quant/w4a16.h"
#include "test_util.h"

namespace k2f::quant {
namespace {

model::KimiForCausalLM lora_base(uint64_t seed) {
  model::KimiForCausalLM lm(testing::tiny_config());
  model::init_weights(lm, seed);
  lm->compute_dtype = torch::kFloat32;
  return lm;
}

torch::Tensor lora_tokens() {
  torch::manual_seed(9);
  return torch::randint(0, testing::tiny_config().vocab_size, {2, 12});
}

LoraOptions rank4() {
  LoraOptions o;
  o.rank = 4;
  o.alpha = 8;
  o.seed = 3;
  return o;
}

void randomise_b(LoraAdapters& adapters) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(21);
  for (auto& [path, adapter] : adapters.adapters) adapter->B.normal_(0, 0.1);
}

std::vector<torch::Tensor> base_bytes(const torch::nn::Module& model) {
  std::vector<torch::Tensor> copies;
  for (const auto& [name, tensor] : model::named_state(model)) copies.push_back(tensor.detach().clone());
  return copies;
}

struct OneLinear : torch::nn::Module {
  model::Linear proj = register_module("proj", model::Linear(12, 10));
};

TEST(Lora, AnAdaptedLinearComputesWxPlusScaledBAx) {
  for (const bool rslora : {false, true}) {
    OneLinear holder;
    auto& linear = holder.proj;
    torch::manual_seed(1);
    {
      torch::NoGradGuard no_grad;
      linear->weight.normal_();
    }
    auto options = rank4();
    options.rslora = rslora;
    options.modules = QatTargets{{"Linear"}, {}};
    auto adapters = apply_lora(holder, options);
    ASSERT_EQ(adapters.adapters.size(), 1u);
    EXPECT_EQ(adapters.adapters[0].first, "proj");
    randomise_b(adapters);
    const auto& A = adapters.adapters[0].second->A;
    const auto& B = adapters.adapters[0].second->B;
    const double s = rslora ? 8.0 / 2.0 : 8.0 / 4.0;
    const auto x = torch::randn({3, 5, 12});
    const auto expected = torch::matmul(x, linear->weight.t()) + s * torch::matmul(torch::matmul(x, A.t()), B.t());
    EXPECT_TRUE(torch::allclose(linear->forward(x), expected, 1e-6, 1e-6)) << "rslora " << rslora;
    const double bound = 1.0 / std::sqrt(12.0);
    EXPECT_LE(A.abs().max().item<double>(), bound);
    EXPECT_GT(A.abs().max().item<double>(), 0.5 * bound);  // Kaiming-uniform, not zero
  }
}

TEST(Lora, AFreshAdapterLeavesTheLogitsAndOnlyAAndBTrain) {
  auto base = lora_base(5);
  auto adapted = lora_base(5);
  auto adapters = apply_lora(*adapted, rank4());
  const auto tokens = lora_tokens();
  EXPECT_TRUE(torch::equal(adapted->forward(tokens), base->forward(tokens)));

  const auto before = base_bytes(*adapted);
  std::vector<torch::Tensor> trained;
  for (const auto& [name, tensor] : adapters.named_parameters()) trained.push_back(tensor);
  torch::optim::Adam optimizer(trained, torch::optim::AdamOptions(1e-2));
  double first_loss = 0, last_loss = 0;
  for (int step = 0; step < 5; ++step) {
    optimizer.zero_grad();
    const auto loss = adapted->forward(tokens).logsumexp(-1).mean();
    loss.backward();
    if (step == 0) {
      for (const auto& item : adapted->named_parameters()) {
        EXPECT_FALSE(item.value().requires_grad()) << item.key();
        EXPECT_FALSE(item.value().grad().defined()) << item.key();
      }
      for (const auto& [path, adapter] : adapters.adapters) {
        ASSERT_TRUE(adapter->B.grad().defined()) << path;
        EXPECT_GT(adapter->B.grad().abs().sum().item<double>(), 0) << path;
      }
      first_loss = loss.item<double>();
    }
    last_loss = loss.item<double>();
    optimizer.step();
  }
  EXPECT_LT(last_loss, first_loss);
  const auto after = base_bytes(*adapted);
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) EXPECT_TRUE(torch::equal(after[i], before[i])) << "base tensor " << i;
  for (const auto& [path, adapter] : adapters.adapters) EXPECT_GT(adapter->A.grad().abs().sum().item<double>(), 0);
}

TEST(Lora, DefaultTargetsAreAttentionSharedExpertsAndDenseMlps) {
  auto lm = lora_base(1);
  const auto adapters = apply_lora(*lm, rank4());
  const auto config = testing::tiny_config();
  // 5 attention projections per layer, 3 dense-MLP projections in layer 0, 3 shared-expert ones in layer 1.
  EXPECT_EQ(adapters.adapters.size(), static_cast<size_t>(5 * config.num_hidden_layers + 3 + 3));
  for (const auto& [path, adapter] : adapters.adapters) {
    EXPECT_EQ(path.find(".experts."), std::string::npos) << path;
    EXPECT_NE(path, "lm_head");
  }
  EXPECT_EQ(adapters.named_parameters().front().first, "base_model.model.model.layers.0.self_attn.q_a_proj.lora_A.weight");
  EXPECT_EQ(adapters.named_parameters()[1].first, "base_model.model.model.layers.0.self_attn.q_a_proj.lora_B.weight");
  EXPECT_TRUE(has_lora(*lm->model->decoder_layers[0]->self_attn->o_proj));
  EXPECT_FALSE(has_lora(*lm->lm_head));
}

TEST(Lora, AdaptersRunOnTopOfFakeQuantisedAndPackedInt4Experts) {
  QatOptions qat{QuantOptions{16, Grid::k2}, QatTargets{}};
  auto options = rank4();
  options.modules = QatTargets{{"re:.*experts\\.[0-9]+\\.(up|down)_proj$"}, {}};
  auto fake = lora_base(7);
  apply_qat(*fake, qat);
  auto fake_adapters = apply_lora(*fake, options);
  auto packed = lora_base(7);
  pack_for_inference(*packed, qat);
  auto packed_adapters = apply_lora(*packed, options);
  EXPECT_TRUE(has_lora(*fake->model->decoder_layers[1]->moe->experts->expert(0)->up_proj));
  randomise_b(fake_adapters);
  randomise_b(packed_adapters);
  const auto tokens = lora_tokens();
  auto unadapted = lora_base(7);
  apply_qat(*unadapted, qat);
  const auto fake_logits = fake->forward(tokens);
  EXPECT_TRUE(torch::allclose(packed->forward(tokens), fake_logits, 1e-4, 1e-4));
  EXPECT_GT((fake_logits - unadapted->forward(tokens)).abs().max().item<double>(), 1e-3);  // the adapters act
}

// lora.quantized_merge: the Linear computes with the weight the merged export stores, the export's
// quantiser applied to W + s B A (INT4 where the base is packed, bf16 elsewhere), and the
// straight-through gradient gives B exactly s * dL/dW A^T.
TEST(Lora, TheQuantizedMergeComputesWithTheExportedMergedWeight) {
  const QuantOptions int4{16, Grid::k2};
  auto lm = lora_base(7);
  pack_for_inference(*lm, QatOptions{int4, QatTargets{}});  // K2 Thinking's scheme: the routed experts
  auto expert = lm->model->decoder_layers[1]->moe->experts->expert(0)->up_proj;
  auto o_proj = lm->model->decoder_layers[1]->self_attn->o_proj;
  ASSERT_NE(packed_weight_of(*expert->kernel), nullptr);
  const auto packed = *packed_weight_of(*expert->kernel);
  const auto o_weight = o_proj->weight.detach().clone();
  auto options = rank4();
  options.quantized_merge = true;
  options.modules = QatTargets{{"re:.*layers\\.1\\.mlp\\.experts\\.0\\.up_proj$", "re:.*layers\\.1\\.self_attn\\.o_proj$"}, {}};
  auto adapters = apply_lora(*lm, options);
  ASSERT_EQ(adapters.adapters.size(), 2u);
  randomise_b(adapters);
  const double s = options.scale();
  torch::manual_seed(4);

  for (auto& [path, adapter] : adapters.adapters) {
    const bool is_expert = path.find(".experts.") != std::string::npos;
    auto& linear = is_expert ? expert : o_proj;
    const auto x = torch::randn({6, linear->in_features});
    const auto merged = (is_expert ? dequantize_rows(packed, 0, packed.out_features()) : o_weight) +
                        s * torch::mm(adapter->B.detach(), adapter->A.detach());
    torch::Tensor stored;
    if (is_expert) {
      const auto q = quantize(merged, int4);
      stored = dequantize(q.codes_OI, q.scales_OG, int4.group_size);
    } else {
      stored = merged.to(torch::kBFloat16).to(torch::kFloat32);
    }
    const auto y = linear->forward(x);
    EXPECT_TRUE(torch::allclose(y, torch::mm(x, stored.t()), 1e-6, 1e-6)) << path;
    const auto unrounded = torch::mm(x, merged.t());
    EXPECT_GT((y - unrounded).abs().max().item<double>(), is_expert ? 1e-3 : 1e-6) << path << ": the rounding acts";

    const auto grad_y = torch::randn_like(y);
    adapter->A.mutable_grad() = torch::Tensor();
    adapter->B.mutable_grad() = torch::Tensor();
    y.backward(grad_y);
    const auto grad_w = torch::mm(grad_y.t(), x);  // dL/d(stored weight), passed straight through
    EXPECT_TRUE(torch::allclose(adapter->B.grad(), s * torch::mm(grad_w, adapter->A.detach().t()), 1e-4, 1e-5)) << path;
    EXPECT_TRUE(torch::allclose(adapter->A.grad(), s * torch::mm(adapter->B.detach().t(), grad_w), 1e-4, 1e-5)) << path;
  }
  options.dropout = 0.1;
  testing::expect_error([&] { options.validate(); }, {"lora.dropout (0.1) with lora.quantized_merge"});
}

TEST(Lora, BadOptionsNameTheKey) {
  auto lm = lora_base(1);
  auto options = rank4();
  options.rank = 17;  // o_proj is [32, 16], q_a_proj [24, 32]
  testing::expect_error([&] { apply_lora(*lm, options); }, {"lora.rank (17)", "exceeds min(in, out)"});
  options = rank4();
  options.modules = QatTargets{{"re:.*nothing_like_this"}, {}};
  testing::expect_error([&] { apply_lora(*lm, options); }, {"lora.targets / lora.ignore select no Linear"});
  options = rank4();
  options.rank = 0;
  testing::expect_error([&] { apply_lora(*lm, options); }, {"lora.rank (0) must be positive"});
  options = rank4();
  options.dropout = 1.0;
  testing::expect_error([&] { apply_lora(*lm, options); }, {"lora.dropout (1)"});
  // Nothing was adapted or frozen by the refused calls.
  for (const auto& item : lm->named_parameters()) EXPECT_TRUE(item.value().requires_grad()) << item.key();
}

}  // namespace
}  // namespace k2f::quant
