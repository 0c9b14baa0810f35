#include "quant/lora.h"

#include <cmath>
#include <map>
#include <optional>
#include <set>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/functional/dropout.h>

#include "base/error.h"
#include "base/matmul.h"
#include "model/kimi_model.h"
#include "quant/fake_quant.h"
#include "quant/qat.h"
#include "quant/w4a16.h"

namespace k2f::quant {

namespace {

// The base product (whatever the Linear ran before) plus the adapter's delta.
class LoraKernel : public model::LinearKernel {
 public:
  LoraKernel(std::shared_ptr<const model::LinearKernel> base, LoraAdapter adapter)
      : base_(std::move(base)), adapter_(std::move(adapter)) {}
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& weight) const override {
    const auto base = base_ ? base_->forward(x, weight) : k2f::linear(x, weight.to(x.scalar_type()));
    return base + adapter_->delta(x).to(base.scalar_type());
  }

 private:
  std::shared_ptr<const model::LinearKernel> base_;
  LoraAdapter adapter_;
};

// Quantisation-aware merge: x times round(W + s B A), where round is what the merged export stores
// (INT4 fake quantisation or bf16) and its gradient passes straight through to A and B. The merged
// weight is formed as LoraMergedSource forms it for the export (fp32 W + s * (B A)), so the two
// agree bit for bit.
class QuantizedMergeLoraKernel : public model::LinearKernel {
 public:
  QuantizedMergeLoraKernel(std::shared_ptr<const model::LinearKernel> base, LoraAdapter adapter)
      : base_(std::move(base)), adapter_(std::move(adapter)) {
    if (base_ && packed_weight_of(*base_)) {
      packed_ = packed_weight_of(*base_);
      int4_ = QuantOptions{packed_->group_size, Grid::k2};  // the grid the INT4 export of such a base uses
    } else if (base_ && fake_quant_options_of(*base_)) {
      int4_ = *fake_quant_options_of(*base_);
    }
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& weight) const override {
    const auto frozen = packed_ ? dequantize_rows(*packed_, 0, packed_->out_features()) : weight.detach().to(torch::kFloat32);
    const auto merged = frozen + adapter_->scale * torch::mm(adapter_->B, adapter_->A);
    if (int4_) return k2f::linear(x, fake_quantize(merged, *int4_, x.scalar_type()));
    const auto stored = merged + (merged.to(torch::kBFloat16).to(torch::kFloat32) - merged).detach();
    return k2f::linear(x, stored.to(x.scalar_type()));
  }

 private:
  std::shared_ptr<const model::LinearKernel> base_;  // keeps the packed weight alive
  LoraAdapter adapter_;
  const PackedInt4Weight* packed_ = nullptr;
  std::optional<QuantOptions> int4_;
};

}  // namespace

double LoraOptions::scale() const {
  return rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

void LoraOptions::validate() const {
  check(rank > 0, "lora.rank (", rank, ") must be positive");
  check(std::isfinite(alpha) && alpha > 0, "lora.alpha (", alpha, ") must be positive");
  check(dropout >= 0 && dropout < 1, "lora.dropout (", dropout, ") must be in [0, 1)");
  check(!modules.targets.empty(), "lora.targets is empty: name the Linear modules to adapt");
  check(!(quantized_merge && dropout > 0), "lora.dropout (", dropout, ") with lora.quantized_merge: the merged weight "
        "has no separate adapter input to drop; set lora.dropout = 0");
}

LoraAdapterImpl::LoraAdapterImpl(int64_t in_features, int64_t out_features, const LoraOptions& options)
    : A(register_parameter("A", torch::zeros({options.rank, in_features}))),
      B(register_parameter("B", torch::zeros({out_features, options.rank}))),
      scale(options.scale()),
      dropout(options.dropout) {}

torch::Tensor LoraAdapterImpl::delta(const torch::Tensor& x) const {
  const auto input = dropout > 0 && is_training() ? torch::dropout(x, dropout, /*train=*/true) : x;
  const auto dtype = x.scalar_type();
  return k2f::linear(k2f::linear(input, A.to(dtype)), B.to(dtype)) * scale;
}

std::vector<std::pair<std::string, torch::Tensor>> LoraAdapters::named_parameters() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& [path, adapter] : adapters) {
    out.emplace_back(lora_a_name(path), adapter->A);
    out.emplace_back(lora_b_name(path), adapter->B);
  }
  return out;
}

void LoraAdapters::train(bool on) {
  for (auto& [path, adapter] : adapters) adapter->train(on);
}

std::string lora_a_name(const std::string& module_path) { return "base_model.model." + module_path + ".lora_A.weight"; }
std::string lora_b_name(const std::string& module_path) { return "base_model.model." + module_path + ".lora_B.weight"; }

LoraAdapters apply_lora(torch::nn::Module& model, const LoraOptions& options) {
  options.validate();
  const auto targets = qat_target_linears(model, options.modules);
  check(!targets.empty(), "lora.targets / lora.ignore select no Linear module of the model; nothing to adapt");
  for (const auto& [path, linear] : targets) {
    check(options.rank <= std::min(linear->in_features, linear->out_features), "lora.rank (", options.rank,
          ") exceeds min(in, out) of ", path, " [", linear->out_features, ", ", linear->in_features, "]");
  }
  for (auto& parameter : model.parameters()) parameter.set_requires_grad(false);

  torch::NoGradGuard no_grad;
  LoraAdapters out;
  for (const auto& [path, linear] : targets) {
    LoraAdapter adapter(linear->in_features, linear->out_features, options);
    auto generator = at::detail::createCPUGenerator(model::tensor_seed(options.seed, lora_a_name(path)));
    const double bound = 1.0 / std::sqrt(static_cast<double>(linear->in_features));
    adapter->A.uniform_(-bound, bound, generator);
    adapter->to(linear->weight.device());
    if (options.quantized_merge) {
      linear->kernel = std::make_shared<QuantizedMergeLoraKernel>(linear->kernel, adapter);
    } else {
      linear->kernel = std::make_shared<LoraKernel>(linear->kernel, adapter);
    }
    out.adapters.emplace_back(path, std::move(adapter));
  }
  return out;
}

bool has_lora(const model::LinearImpl& linear) {
  return dynamic_cast<const LoraKernel*>(linear.kernel.get()) != nullptr ||
         dynamic_cast<const QuantizedMergeLoraKernel*>(linear.kernel.get()) != nullptr;
}

namespace {
// "<m>.weight" -> "<m>"; "" for other names.
std::string module_of_weight(const std::string& name) {
  const std::string suffix = ".weight";
  if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) return "";
  return name.substr(0, name.size() - suffix.size());
}
}  // namespace

LoraMergedSource::LoraMergedSource(std::unique_ptr<model::WeightSource> base,
                                   std::unique_ptr<model::WeightSource> adapters, double scale)
    : base_(std::move(base)), adapters_(std::move(adapters)), scale_(scale) {
  for (const auto& name : adapters_->tensor_names()) {
    const std::string a = "lora_A.weight", b = "lora_B.weight";
    const bool is_a = name.size() > a.size() && name.compare(name.size() - a.size(), a.size(), a) == 0;
    const bool is_b = name.size() > b.size() && name.compare(name.size() - b.size(), b.size(), b) == 0;
    check(is_a || is_b, adapters_->description(), ": \"", name, "\" is not a LoRA tensor (lora_A / lora_B)");
    const std::string prefix = "base_model.model.";
    check(name.rfind(prefix, 0) == 0, adapters_->description(), ": \"", name, "\" does not start with ", prefix);
    const std::string module = name.substr(prefix.size(), name.size() - prefix.size() - a.size() - 1);
    const std::string weight = module + ".weight";
    check(base_->contains(weight), adapters_->description(), ": adapter for ", module, ", which ",
          base_->description(), " does not have (an adapter for another base?)");
    check(adapters_->contains(lora_a_name(module)) && adapters_->contains(lora_b_name(module)),
          adapters_->description(), ": ", module, " has only one of lora_A and lora_B");
    const auto w = base_->shape(weight), A = adapters_->shape(lora_a_name(module)), B = adapters_->shape(lora_b_name(module));
    check(w.size() == 2 && A.size() == 2 && B.size() == 2 && A[1] == w[1] && B[0] == w[0] && A[0] == B[1],
          adapters_->description(), ": the adapter of ", module, " (lora_A [", A.size() == 2 ? A[0] : -1, ", ",
          A.size() == 2 ? A[1] : -1, "], lora_B [", B.size() == 2 ? B[0] : -1, ", ", B.size() == 2 ? B[1] : -1,
          "]) does not fit its weight [", w.size() == 2 ? w[0] : -1, ", ", w.size() == 2 ? w[1] : -1,
          "] in ", base_->description(), " (an adapter for another base?)");
  }
}

std::string LoraMergedSource::description() const {
  return base_->description() + " with the adapters of " + adapters_->description();
}

bool LoraMergedSource::adapted(const std::string& name) const {
  const std::string module = module_of_weight(name);
  return !module.empty() && adapters_->contains(lora_a_name(module));
}

torch::ScalarType LoraMergedSource::dtype(const std::string& name) {
  return adapted(name) ? torch::kFloat32 : base_->dtype(name);
}

torch::Tensor LoraMergedSource::load(const std::string& name) {
  auto weight = base_->load(name);
  if (!adapted(name)) return weight;
  const std::string module = module_of_weight(name);
  const auto A = adapters_->load(lora_a_name(module)).to(torch::kFloat32);
  const auto B = adapters_->load(lora_b_name(module)).to(torch::kFloat32);
  return weight.to(torch::kFloat32) + scale_ * torch::mm(B, A);
}

namespace {
// PEFT's list match: the module's name is the entry or ends with "." + entry.
bool peft_suffix_matches(const std::string& path, const std::string& suffix) {
  return path == suffix || (path.size() > suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0 &&
                            path[path.size() - suffix.size() - 1] == '.');
}
}  // namespace

Json peft_adapter_config(const LoraOptions& options, const std::vector<std::string>& module_paths,
                         const std::vector<std::string>& all_linear_paths, const std::string& base_model) {
  // Each adapted module by its shortest dotted suffix that matches no module left unadapted:
  // "q_b_proj" for attention, "mlp.gate_proj" for dense MLPs (not the experts' gate_proj).
  const std::set<std::string> adapted(module_paths.begin(), module_paths.end());
  std::map<std::string, bool> selects_only_adapted;
  std::set<std::string> targets;
  for (const auto& path : module_paths) {
    std::string suffix = path;
    for (size_t dot = path.rfind('.'); dot != std::string::npos; dot = dot == 0 ? std::string::npos : path.rfind('.', dot - 1)) {
      const std::string candidate = path.substr(dot + 1);
      auto [it, fresh] = selects_only_adapted.emplace(candidate, true);
      if (fresh)
        for (const auto& other : all_linear_paths)
          if (!adapted.count(other) && peft_suffix_matches(other, candidate)) it->second = false;
      if (it->second) {
        suffix = candidate;
        break;
      }
    }
    targets.insert(suffix);
  }
  return {{"peft_type", "LORA"},
          {"task_type", "CAUSAL_LM"},
          {"r", options.rank},
          {"lora_alpha", options.alpha},
          {"lora_dropout", options.dropout},
          {"target_modules", std::vector<std::string>(targets.begin(), targets.end())},
          {"bias", "none"},
          {"use_rslora", options.rslora},
          {"fan_in_fan_out", false},
          {"modules_to_save", nullptr},
          {"init_lora_weights", true},
          {"base_model_name_or_path", base_model},
          {"inference_mode", true}};
}

}  // namespace k2f::quant
