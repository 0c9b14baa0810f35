// base/matmul.cpp: bf16 products keep fp32 sums in every operand layout on this CPU (whatever
// LibTorch's own bf16 GEMM does here), forward and backward, and return the operands' dtype.
#include <gtest/gtest.h>

#include <torch/csrc/autograd/autograd.h>

#include "base/matmul.h"

namespace k2f {
namespace {

// Fixed bf16-exact values: multiples of 1/64 below 2 in magnitude.
torch::Tensor exact_bf16_values(int64_t rows, int64_t cols, int64_t salt) {
  return ((torch::arange(rows * cols, torch::kInt64) * salt) % 251 - 125).to(torch::kFloat32).div(64).view({rows, cols});
}

double relative_error(const torch::Tensor& got, const torch::Tensor& exact) {
  return ((got.to(torch::kFloat64) - exact).abs().max() / exact.abs().max()).item<double>();
}

// An accurate bf16 product is one bf16 rounding (2^-8 relative) from the exact one; bf16 sums over
// k = 4096 are off by about 12% where LibTorch's fallback is used (measured on a Zen 3).
constexpr double kOneBf16Rounding = 1.0 / 256;

TEST(Matmul, Bf16ProductsKeepFp32SumsInEveryLayout) {
  const auto a = exact_bf16_values(32, 4096, 7919), b = exact_bf16_values(4096, 24, 104729);
  const auto exact = torch::matmul(a.to(torch::kFloat64), b.to(torch::kFloat64));
  for (bool transpose_a : {false, true}) {
    for (bool transpose_b : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "transposed a " << transpose_a << ", b " << transpose_b);
      auto a16 = a.to(torch::kBFloat16), b16 = b.to(torch::kBFloat16);
      if (transpose_a) a16 = a16.t().contiguous().t();
      if (transpose_b) b16 = b16.t().contiguous().t();
      const auto product = k2f::matmul(a16, b16);
      EXPECT_EQ(product.scalar_type(), torch::kBFloat16);
      EXPECT_LE(relative_error(product, exact), kOneBf16Rounding);
      EXPECT_LE(relative_error(k2f::bmm(a16.unsqueeze(0), b16.unsqueeze(0)).squeeze(0), exact), kOneBf16Rounding);
      EXPECT_LE(relative_error(k2f::linear(a16, b16.t()), exact), kOneBf16Rounding);
    }
  }
}

TEST(Matmul, Bf16GradientsKeepFp32Sums) {
  // y = x W^T; with an all-ones upstream gradient, dx = 1 W and dW = 1^T x: column sums over 4096 rows.
  const auto x = exact_bf16_values(4096, 48, 7919), w = exact_bf16_values(40, 48, 104729);
  auto x16 = x.to(torch::kBFloat16).requires_grad_(), w16 = w.to(torch::kBFloat16).requires_grad_();
  k2f::linear(x16, w16).sum().backward();
  ASSERT_EQ(x16.grad().scalar_type(), torch::kBFloat16);
  ASSERT_EQ(w16.grad().scalar_type(), torch::kBFloat16);
  const auto x64 = x.to(torch::kFloat64), w64 = w.to(torch::kFloat64);
  EXPECT_LE(relative_error(w16.grad(), x64.sum(0).expand({40, 48})), kOneBf16Rounding);
  EXPECT_LE(relative_error(x16.grad(), w64.sum(0).expand({4096, 48})), kOneBf16Rounding);
}

TEST(Matmul, Fp32AndFp64AreLibTorchsOwnProducts) {
  const auto a = exact_bf16_values(8, 64, 7919), b = exact_bf16_values(64, 8, 104729);
  EXPECT_TRUE(torch::equal(k2f::matmul(a, b), torch::matmul(a, b)));
  EXPECT_TRUE(torch::equal(k2f::bmm(a.unsqueeze(0), b.unsqueeze(0)), torch::bmm(a.unsqueeze(0), b.unsqueeze(0))));
  const auto a64 = a.to(torch::kFloat64), b64 = b.to(torch::kFloat64);
  EXPECT_EQ(k2f::linear(a64, b64.t()).scalar_type(), torch::kFloat64);
  EXPECT_TRUE(torch::equal(k2f::linear(a64, b64.t()), torch::matmul(a64, b64)));
}

}  // namespace
}  // namespace k2f
