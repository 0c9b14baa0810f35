#include "train/optim/newton_schulz.h"

#include "base/matmul.h"

namespace k2f::train {

torch::Tensor newton_schulz5(const torch::Tensor& G, torch::ScalarType dtype, int steps) {
  constexpr double a = 3.4445, b = -4.7750, c = 2.0315;
  const bool tall = G.size(0) > G.size(1);
  auto X = G.to(dtype);
  X = X / (X.norm() + 1e-7);
  if (tall) X = X.t();
  for (int i = 0; i < steps; ++i) {
    const auto A = k2f::matmul(X, X.t());
    const auto B = b * A + c * k2f::matmul(A, A);
    X = a * X + k2f::matmul(B, X);
  }
  return tall ? X.t() : X;
}

}  // namespace k2f::train
