#include "base/matmul.h"

#include <algorithm>

#include <torch/nn/functional/linear.h>

#include "base/log.h"

namespace k2f {

namespace {

// Largest error of a bf16 product in one layout, relative to the largest exact entry. The values
// are multiples of 1/64 below 2 in magnitude: exact in bf16, so the fp64 product is the exact one.
double bf16_product_error(bool transpose_a, bool transpose_b) {
  constexpr int64_t M = 16, K = 1024;
  const auto a = ((torch::arange(M * K, torch::kInt64) * 7919) % 251 - 125).to(torch::kFloat64).div(64).view({M, K});
  const auto b = ((torch::arange(K * M, torch::kInt64) * 104729) % 241 - 120).to(torch::kFloat64).div(64).view({K, M});
  const auto exact = torch::matmul(a, b);
  const auto in_layout = [](const torch::Tensor& t, bool transposed) {
    const auto bf16 = t.to(torch::kBFloat16);
    return transposed ? bf16.t().contiguous().t() : bf16;  // the same matrix, stored column-major
  };
  const auto product = torch::matmul(in_layout(a, transpose_a), in_layout(b, transpose_b)).to(torch::kFloat64);
  return ((product - exact).abs().max() / exact.abs().max()).item<double>();
}

bool probe_cpu_bf16_matmul() {
  torch::NoGradGuard no_grad;
  double worst = 0;
  for (bool transpose_a : {false, true})
    for (bool transpose_b : {false, true}) worst = std::max(worst, bf16_product_error(transpose_a, transpose_b));
  // An accurate product is off by one bf16 rounding of each entry (measured 0.3%); bf16 sums by 4.7%.
  const bool accurate = worst < 1e-2;
  if (!accurate)
    log::info("this LibTorch's bf16 matrix product on this CPU sums in bf16 (", worst * 100,
              "% error at k = 1024): bf16 products run in fp32 on the same values instead");
  return accurate;
}

bool needs_fp32_sums(const torch::Tensor& a) {
  return a.scalar_type() == torch::kBFloat16 && a.device().is_cpu() && !cpu_bf16_matmul_is_accurate();
}

template <typename Product>
torch::Tensor with_fp32_sums(const torch::Tensor& a, const torch::Tensor& b, Product product) {
  if (!needs_fp32_sums(a)) return product(a, b);
  return product(a.to(torch::kFloat32), b.to(torch::kFloat32)).to(a.scalar_type());
}

}  // namespace

bool cpu_bf16_matmul_is_accurate() {
  static const bool accurate = probe_cpu_bf16_matmul();
  return accurate;
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight) {
  return with_fp32_sums(x, weight, [](const torch::Tensor& x_, const torch::Tensor& w) {
    return torch::nn::functional::linear(x_, w);
  });
}

torch::Tensor matmul(const torch::Tensor& a, const torch::Tensor& b) {
  return with_fp32_sums(a, b, [](const torch::Tensor& a_, const torch::Tensor& b_) { return torch::matmul(a_, b_); });
}

torch::Tensor bmm(const torch::Tensor& a, const torch::Tensor& b) {
  return with_fp32_sums(a, b, [](const torch::Tensor& a_, const torch::Tensor& b_) { return torch::bmm(a_, b_); });
}

}  // namespace k2f
