#include "model/layers.h"

#include <torch/nn/functional/activation.h>

#include "base/matmul.h"

namespace k2f::model {

LinearImpl::LinearImpl(int64_t in_features_, int64_t out_features_)
    : weight(register_parameter("weight", torch::empty({out_features_, in_features_}))),
      in_features(in_features_),
      out_features(out_features_) {}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) const {
  if (kernel) return kernel->forward(x, weight);
  return k2f::linear(x, weight.to(x.scalar_type()));
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : weight(register_parameter("weight", torch::ones({dim}))), eps(eps_) {}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) const {
  const auto wide = accumulate_dtype(x.scalar_type());
  const auto x_wide = x.to(wide);
  const auto normalized = x_wide * torch::rsqrt(x_wide.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return (weight.to(wide) * normalized).to(x.scalar_type());
}

MLPImpl::MLPImpl(int64_t hidden_size, int64_t intermediate_size) {
  gate_proj = register_module("gate_proj", Linear(hidden_size, intermediate_size));
  up_proj = register_module("up_proj", Linear(hidden_size, intermediate_size));
  down_proj = register_module("down_proj", Linear(intermediate_size, hidden_size));
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x) const {
  return down_proj->forward(torch::silu(gate_proj->forward(x)) * up_proj->forward(x));
}

}  // namespace k2f::model
