// train/optim/newton_schulz.cpp against a plain fp64 loop written here, and the property that
// makes it useful: the result's singular values lie near 1.
#include <gtest/gtest.h>

#include <vector>

#include "train/optim/newton_schulz.h"

namespace k2f::train {
namespace {

using Matrix = std::vector<std::vector<double>>;

Matrix multiply(const Matrix& a, const Matrix& b) {
  Matrix c(a.size(), std::vector<double>(b[0].size(), 0.0));
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t k = 0; k < b.size(); ++k)
      for (size_t j = 0; j < b[0].size(); ++j) c[i][j] += a[i][k] * b[k][j];
  return c;
}

Matrix transpose(const Matrix& a) {
  Matrix t(a[0].size(), std::vector<double>(a.size()));
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = 0; j < a[0].size(); ++j) t[j][i] = a[i][j];
  return t;
}

// X = G/(|G|_F + 1e-7), transposed when tall; 5 x { A = X X^T; B = b A + c A A; X = a X + B X }.
Matrix reference_ns5(Matrix x) {
  const double a = 3.4445, b = -4.7750, c = 2.0315;
  double norm = 0;
  for (const auto& row : x)
    for (double v : row) norm += v * v;
  norm = std::sqrt(norm) + 1e-7;
  for (auto& row : x)
    for (double& v : row) v /= norm;
  const bool tall = x.size() > x[0].size();
  if (tall) x = transpose(x);
  for (int step = 0; step < 5; ++step) {
    const Matrix A = multiply(x, transpose(x));
    const Matrix AA = multiply(A, A);
    Matrix B = A;
    for (size_t i = 0; i < B.size(); ++i)
      for (size_t j = 0; j < B.size(); ++j) B[i][j] = b * A[i][j] + c * AA[i][j];
    const Matrix BX = multiply(B, x);
    for (size_t i = 0; i < x.size(); ++i)
      for (size_t j = 0; j < x[0].size(); ++j) x[i][j] = a * x[i][j] + BX[i][j];
  }
  return tall ? transpose(x) : x;
}

torch::Tensor to_tensor(const Matrix& m) {
  auto t = torch::empty({static_cast<int64_t>(m.size()), static_cast<int64_t>(m[0].size())}, torch::kFloat64);
  for (size_t i = 0; i < m.size(); ++i)
    for (size_t j = 0; j < m[0].size(); ++j) t[i][j] = m[i][j];
  return t;
}

Matrix known_matrix(int rows, int cols) {  // deterministic, full rank, not symmetric
  Matrix m(rows, std::vector<double>(cols));
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) m[i][j] = std::sin(1.0 + 3.0 * i + 7.0 * j) + (i == j ? 0.5 : 0.0);
  return m;
}

TEST(NewtonSchulz, MatchesFp64ReferenceWideAndTall) {
  for (auto [rows, cols] : {std::pair{6, 10}, std::pair{12, 5}}) {
    const Matrix g = known_matrix(rows, cols);
    const auto expected = to_tensor(reference_ns5(g));
    const auto input = to_tensor(g);
    EXPECT_TRUE(torch::allclose(newton_schulz5(input, torch::kFloat64), expected, 0, 1e-12));
    EXPECT_TRUE(torch::allclose(newton_schulz5(input, torch::kFloat32).to(torch::kFloat64), expected, 0, 1e-5));
    EXPECT_LT((newton_schulz5(input, torch::kBFloat16).to(torch::kFloat64) - expected).abs().max().item<double>(), 0.05);
  }
}

TEST(NewtonSchulz, SingularValuesNearOne) {
  torch::manual_seed(0);
  const auto g = torch::randn({32, 64}, torch::kFloat64);
  const auto s = std::get<1>(torch::svd(newton_schulz5(g, torch::kFloat64)));
  EXPECT_GT(s.min().item<double>(), 0.6);
  EXPECT_LT(s.max().item<double>(), 1.25);
}

}  // namespace
}  // namespace k2f::train
