// The two leaf layers every block is built from. Weights are fp32 master copies; a Linear casts
// its weight to the activation dtype, so bf16 compute is "activations in bf16" and autograd
// returns fp32 gradients. RMSNorm always normalises in fp32 (HF DeepseekV3RMSNorm).
#pragma once

#include <memory>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace k2f::model {

// The dtype reductions run in: fp32, or fp64 when the activations are fp64 (gradient checks).
inline torch::ScalarType accumulate_dtype(torch::ScalarType activations) {
  return activations == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

// How a Linear computes x W^T when something outside the model changes it: INT4 fake quantisation
// during QAT, or a packed W4A16 kernel at inference (quant/). The model never knows which.
class LinearKernel {
 public:
  virtual ~LinearKernel() = default;
  // `weight` is the module's parameter (empty when the kernel holds its own packed copy).
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& weight) const = 0;
};

// y = x W^T, no bias (no Kimi-K2 linear has one). weight: [out_features, in_features].
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features);
  torch::Tensor forward(const torch::Tensor& x) const;
  torch::Tensor weight;
  int64_t in_features, out_features;
  std::shared_ptr<const LinearKernel> kernel;  // null: the plain product with `weight`
};
TORCH_MODULE(Linear);

// y = w * (x_f32 * rsqrt(mean(x_f32^2) + eps)), returned in x's dtype.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x) const;
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

// down_proj(silu(gate_proj(x)) * up_proj(x)): the dense MLP, each routed expert and the shared experts.
class MLPImpl : public torch::nn::Module {
 public:
  MLPImpl(int64_t hidden_size, int64_t intermediate_size);
  torch::Tensor forward(const torch::Tensor& x) const;
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(MLP);

}  // namespace k2f::model
