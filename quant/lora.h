// Low-rank adapters (LoRA) applied to a frozen model from outside, as HF PEFT defines them
// (K2_REFERENCE section 9): each target Linear computes W x + s B A dropout(x), s = alpha / r (or
// alpha / sqrt(r) with rsLoRA), with A [r, in] and B [out, r] the only parameters that train. The
// adapter wraps whatever kernel the Linear already runs (plain, fake-quantised or packed W4A16), so
// a released INT4 base stays packed and frozen while its adapters train. Adapters are addressed by
// PEFT's names, "base_model.model.<HF module path>.lora_A.weight" and ".lora_B.weight".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "base/json_io.h"
#include "model/layers.h"
#include "model/weight_source.h"
#include "quant/int4_quantizer.h"
#include "quant/qat_targets.h"

namespace k2f::quant {

struct LoraOptions {
  int64_t rank = 0;  // r; 0: no adapters
  double alpha = 16.0;
  double dropout = 0.0;  // on the adapter's input only, while training
  bool rslora = false;   // s = alpha / sqrt(r) instead of alpha / r
  // The Linear modules adapted, in quant.targets' pattern language over HF module paths. Default:
  // the attention projections, the shared experts and the dense MLPs (not the routed experts, not
  // lm_head).
  QatTargets modules{{"re:.*self_attn\\.", "re:.*shared_experts\\.",
                      "re:.*layers\\.[0-9]+\\.mlp\\.(gate|up|down)_proj$"},
                     {"lm_head"}};
  uint64_t seed = 0;  // A's initialisation, per adapter from (seed, module path)
  // Quantisation-aware merge: each adapted Linear computes with the weight a merged export stores,
  // round(W + s B A) (straight-through gradient to A and B), instead of W x + s B A x: INT4
  // fake_quantize for a base linear stored INT4 (packed, or fake-quantised by QAT), bf16 for the
  // others. The merged INT4 export then computes exactly what training computed. Dropout must be 0.
  bool quantized_merge = false;

  double scale() const;
  void validate() const;  // messages use "lora.<key>"
};

// One adapted Linear's A and B. delta(x) = s B A dropout(x), in x's dtype.
class LoraAdapterImpl : public torch::nn::Module {
 public:
  LoraAdapterImpl(int64_t in_features, int64_t out_features, const LoraOptions& options);
  torch::Tensor delta(const torch::Tensor& x) const;
  torch::Tensor A, B;  // [r, in], [out, r]
  double scale, dropout;
};
TORCH_MODULE(LoraAdapter);

struct LoraAdapters {
  // (HF module path, adapter) in module order.
  std::vector<std::pair<std::string, LoraAdapter>> adapters;
  // A and B of every adapter under PEFT's names, A before B, in module order.
  std::vector<std::pair<std::string, torch::Tensor>> named_parameters() const;
  void train(bool on);  // dropout runs only in training mode
};

// PEFT's tensor names for the adapter of `module_path`.
std::string lora_a_name(const std::string& module_path);
std::string lora_b_name(const std::string& module_path);

// Freezes every parameter of `model` (requires_grad false) and adapts each Linear `options.modules`
// selects: A Kaiming-uniform (a = sqrt(5), so U(-1/sqrt(in), 1/sqrt(in))) from a generator seeded
// by (options.seed, module path), B zero, so the adapted model computes what the base computes.
// Adapters are created on each Linear's device, in fp32. With `quantized_merge`, each Linear's
// frozen W is the base kernel's packed INT4 weight (dequantised per forward) or the Linear's own. Errors: no module selected (naming
// lora.targets / lora.ignore), a rank above min(in, out) of a target (naming it and its shape).
LoraAdapters apply_lora(torch::nn::Module& model, const LoraOptions& options);

// Whether `linear` currently runs with an adapter.
bool has_lora(const model::LinearImpl& linear);

// A base model's tensors with adapters merged in on read: "<m>.weight" of every adapted module is
// W + s B A in fp32, every other tensor is the base's as stored. Streams tensor by tensor (what
// exports of a LoRA run read), so peak memory is about one tensor.
class LoraMergedSource : public model::WeightSource {
 public:
  // `adapters` holds lora_A / lora_B tensors under PEFT's names.
  LoraMergedSource(std::unique_ptr<model::WeightSource> base, std::unique_ptr<model::WeightSource> adapters,
                   double scale);
  std::string description() const override;
  std::vector<std::string> tensor_names() const override { return base_->tensor_names(); }
  bool contains(const std::string& name) const override { return base_->contains(name); }
  std::vector<int64_t> shape(const std::string& name) override { return base_->shape(name); }
  torch::ScalarType dtype(const std::string& name) override;
  torch::Tensor load(const std::string& name) override;

 private:
  bool adapted(const std::string& name) const;
  std::unique_ptr<model::WeightSource> base_, adapters_;
  double scale_;
};

// adapter_config.json as HF PEFT writes it for these adapters (K2_REFERENCE section 9).
// `module_paths`: the adapted modules; `all_linear_paths`: every Linear of the base. target_modules
// lists, for each adapted module, the shortest dotted suffix of its path (PEFT matches list
// entries as suffixes) that selects no module left unadapted: "q_b_proj", "mlp.down_proj".
Json peft_adapter_config(const LoraOptions& options, const std::vector<std::string>& module_paths,
                         const std::vector<std::string>& all_linear_paths, const std::string& base_model);

}  // namespace k2f::quant
