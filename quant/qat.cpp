#include "quant/qat.h"

#include <map>

#include "base/error.h"
#include "base/matmul.h"
#include "quant/fake_quant.h"
#include "quant/int4_pack.h"
#include "quant/w4a16.h"

namespace k2f::quant {

namespace {

class FakeQuantKernel : public model::LinearKernel {
 public:
  explicit FakeQuantKernel(QuantOptions options) : options_(options) {}
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& weight) const override {
    return k2f::linear(x, fake_quantize(weight, options_, x.scalar_type()));
  }
  const QuantOptions& options() const { return options_; }

 private:
  QuantOptions options_;
};

// "model.layers.7.mlp.experts.3.up_proj" -> 7; -1 outside the decoder layers.
int64_t layer_of(const std::string& path) {
  const std::string prefix = "model.layers.";
  if (path.rfind(prefix, 0) != 0) return -1;
  return std::stoll(path.substr(prefix.size(), path.find('.', prefix.size()) - prefix.size()));
}

}  // namespace

namespace {

// The Linear modules `options` quantises, after checking the group size fits each of them.
auto checked_targets(torch::nn::Module& model, const QatOptions& options) {
  check(options.quant.group_size > 0, "quant.group_size (", options.quant.group_size, ") must be positive");
  auto targets = qat_target_linears(model, options.targets);
  check(!targets.empty(), "quant.targets / quant.ignore select no Linear module of the model; nothing to quantise");
  for (const auto& [path, linear] : targets) {
    check(linear->in_features % options.quant.group_size == 0, "quant.group_size (", options.quant.group_size,
          ") must divide the in_features (", linear->in_features, ") of ", path);
  }
  return targets;
}

}  // namespace

std::vector<std::string> apply_qat(torch::nn::Module& model, const QatOptions& options) {
  std::vector<std::string> paths;
  auto kernel = std::make_shared<FakeQuantKernel>(options.quant);
  for (const auto& [path, linear] : checked_targets(model, options)) {
    linear->kernel = kernel;
    paths.push_back(path);
  }
  return paths;
}

std::vector<std::string> pack_for_inference(torch::nn::Module& model, const QatOptions& options) {
  torch::NoGradGuard no_grad;
  std::vector<std::string> paths;
  for (const auto& [path, linear] : checked_targets(model, options)) {
    const auto quantized = quantize(linear->weight.detach(), options.quant);
    PackedInt4Weight weight{pack_int4(quantized.codes_OI), quantized.scales_OG, linear->in_features,
                            options.quant.group_size};
    linear->kernel = make_w4a16_kernel(std::move(weight));
    linear->weight.set_data(torch::empty({0}, linear->weight.options()));
    paths.push_back(path);
  }
  return paths;
}

bool has_fake_quant(const model::LinearImpl& linear) {
  return dynamic_cast<const FakeQuantKernel*>(linear.kernel.get()) != nullptr;
}

const QuantOptions* fake_quant_options_of(const model::LinearKernel& kernel) {
  const auto* fake_quant = dynamic_cast<const FakeQuantKernel*>(&kernel);
  return fake_quant ? &fake_quant->options() : nullptr;
}

std::vector<std::pair<std::string, double>> quantization_error_per_layer(const torch::nn::Module& model,
                                                                         const QatOptions& options) {
  torch::NoGradGuard no_grad;
  std::map<int64_t, std::pair<double, double>> sums;  // layer -> (sum |w - fq(w)|, sum |w|)
  for (const auto& [path, linear] : qat_target_linears(model, options.targets)) {
    const auto w = linear->weight.detach().to(torch::kFloat32);
    auto& [error, magnitude] = sums[layer_of(path)];
    error += (w - fake_quantize(w, options.quant)).abs().sum().item<double>();
    magnitude += w.abs().sum().item<double>();
  }
  std::vector<std::pair<std::string, double>> errors;
  for (const auto& [layer, sum] : sums) {
    const std::string name = layer < 0 ? "other" : "layer." + std::to_string(layer);
    errors.emplace_back(name, sum.second > 0 ? sum.first / sum.second : 0.0);
  }
  return errors;
}

}  // namespace k2f::quant
