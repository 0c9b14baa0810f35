// quant/w4a16.cpp: the packed kernel equals x @ dequantize(W)^T for every tile/row/group layout,
// whichever path runs (fp64 activations: exact to rounding of the sum; fp32 and bf16: to fp32
// summation, bf16 outputs rounded once), the tile
// dequantisation equals the reference dequantize(unpack(...)), the input gradient is grad_y W (the
// weight stays frozen), the tensor-op path a GPU runs equals the kernel, and misuse is rejected.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "quant/int4_pack.h"
#include "quant/int4_quantizer.h"
#include "quant/w4a16.h"
#include "test_util.h"

namespace k2f::quant {
namespace {

struct Case {
  PackedInt4Weight packed;
  torch::Tensor dequantized_OI;  // fp32, exact
};

Case make_case(int64_t O, int64_t I, int64_t group, Grid grid, uint64_t seed) {
  torch::manual_seed(seed);  // Debian's LibTorch seeds its default generator randomly
  const auto w = torch::randn({O, I}) * 0.1;
  const auto q = quantize(w, QuantOptions{group, grid});
  return {PackedInt4Weight{pack_int4(q.codes_OI), q.scales_OG, I, group}, dequantize(q.codes_OI, q.scales_OG, group)};
}

TEST(W4A16, TileDequantisationEqualsReference) {
  for (const Grid grid : {Grid::k2, Grid::minmax}) {
    const auto c = make_case(37, 96, 32, grid, 3);
    EXPECT_TRUE(torch::equal(dequantize_rows(c.packed, 0, 37), c.dequantized_OI));
    EXPECT_TRUE(torch::equal(dequantize_rows(c.packed, 5, 7), c.dequantized_OI.narrow(0, 5, 7)));
  }
}

TEST(W4A16, MatchesDenseProductOverShapes) {
  torch::NoGradGuard no_grad;
  // Output widths below, at and above one tile (tiles hold 65536 / I rows), row counts from 1
  // (decode) to 33, group sizes 32 and 64; through w4a16_linear (the direct kernels where the CPU
  // has AVX-512) and through the portable tiled path. Both sum in fp32 over x as given, so bf16
  // activations give the fp32 product of their bf16 values, rounded to bf16 once.
  for (const auto& [O, I, group] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {1, 64, 32}, {37, 96, 32}, {700, 128, 64}, {2100, 64, 32}}) {
    const auto c = make_case(O, I, group, Grid::k2, 11);
    for (const int64_t N : {1, 5, 16, 17, 33}) {
      for (const auto& [path, linear] :
           std::vector<std::pair<std::string, std::function<torch::Tensor(const torch::Tensor&)>>>{
               {"w4a16_linear", [&](const torch::Tensor& x) { return w4a16_linear(x, c.packed); }},
               {"tiled", [&](const torch::Tensor& x) { return w4a16_linear_tiled(x, c.packed); }}}) {
        const std::string where = path + " " + std::to_string(O) + "x" + std::to_string(I) + " N=" + std::to_string(N);
        const auto x64 = torch::randn({N, I}, torch::kFloat64);
        const auto expected64 = x64.matmul(c.dequantized_OI.to(torch::kFloat64).t());
        EXPECT_LT((linear(x64) - expected64).abs().max().item<double>(), 1e-12) << where;

        const auto x32 = x64.to(torch::kFloat32);
        const auto got32 = linear(x32);
        EXPECT_EQ(got32.scalar_type(), torch::kFloat32);
        EXPECT_TRUE(torch::allclose(got32, x32.matmul(c.dequantized_OI.t()), 1e-5, 1e-5)) << where;

        const auto x16 = x64.to(torch::kBFloat16);
        const auto got16 = linear(x16);
        EXPECT_EQ(got16.scalar_type(), torch::kBFloat16);
        // One bf16 rounding of nearly equal fp32 sums: at most one bf16 ulp (2^-7 relative) apart.
        const auto expected16 = x16.to(torch::kFloat32).matmul(c.dequantized_OI.t()).to(torch::kBFloat16);
        EXPECT_TRUE(torch::allclose(got16.to(torch::kFloat32), expected16.to(torch::kFloat32), 1.0 / 128, 1e-6))
            << where;
      }
    }
  }
}

TEST(W4A16, KeepsLeadingDimsOfTheInput) {
  torch::NoGradGuard no_grad;
  const auto c = make_case(24, 64, 32, Grid::k2, 5);
  const auto x = torch::randn({2, 3, 64});
  const auto y = w4a16_linear(x, c.packed);
  EXPECT_EQ(y.sizes(), torch::IntArrayRef({2, 3, 24}));
  EXPECT_TRUE(torch::allclose(y, x.matmul(c.dequantized_OI.t()), 1e-5, 1e-5));
}

TEST(W4A16, GivesTheInputItsGradientAndTheFrozenWeightNone) {
  // 600 output rows span several backward tiles (tiles hold 65536 / I rows, at least 16).
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    const auto c = make_case(600, 256, 32, Grid::k2, 11);
    const auto x = torch::randn({2, 5, 256}).to(dtype).requires_grad_();
    const auto grad_y = torch::randn({2, 5, 600});
    w4a16_linear(x, c.packed).backward(grad_y.to(dtype));
    const auto expected = grad_y.matmul(c.dequantized_OI);
    ASSERT_TRUE(x.grad().defined());
    EXPECT_EQ(x.grad().scalar_type(), dtype);
    const double tolerance = dtype == torch::kFloat32 ? 1e-4 : 0.1;
    EXPECT_TRUE(torch::allclose(x.grad().to(torch::kFloat32), expected, tolerance, tolerance))
        << (x.grad().to(torch::kFloat32) - expected).abs().max().item<double>();
    EXPECT_FALSE(c.packed.scales_OG.requires_grad());
  }
}

// Off the CPU (a GPU) the weight is dequantised with tensor ops for each product: run here on the
// CPU, it equals the packed kernel (fp32: to summation order; bf16: the weight rounded to bf16, as
// GPU INT4 kernels multiply) and gives the input the same gradient. An input on another device
// takes this path (the meta device: shapes only).
TEST(W4A16, TheDequantisedPathOffTheCpuEqualsThePackedKernel) {
  const auto c = make_case(600, 256, 32, Grid::k2, 13);
  EXPECT_TRUE(torch::equal(dequantize_with_tensor_ops(c.packed), c.dequantized_OI));
  const auto x = torch::randn({2, 5, 256}).requires_grad_();
  const auto x_packed = x.detach().clone().requires_grad_();
  const auto grad_y = torch::randn({2, 5, 600});
  const auto y = w4a16_linear_dequantized(x, c.packed);
  const auto y_packed = w4a16_linear(x_packed, c.packed);
  EXPECT_TRUE(torch::allclose(y, y_packed, 1e-5, 1e-5)) << (y - y_packed).abs().max().item<double>();
  y.backward(grad_y);
  y_packed.backward(grad_y);
  EXPECT_TRUE(torch::allclose(x.grad(), x_packed.grad(), 1e-4, 1e-4)) << (x.grad() - x_packed.grad()).abs().max().item<double>();
  torch::NoGradGuard no_grad;
  const auto x16 = torch::randn({7, 256}).to(torch::kBFloat16);
  const auto y16 = w4a16_linear_dequantized(x16, c.packed);
  EXPECT_EQ(y16.scalar_type(), torch::kBFloat16);
  const auto expected16 = x16.to(torch::kFloat32).matmul(c.dequantized_OI.to(torch::kBFloat16).to(torch::kFloat32).t());
  EXPECT_TRUE(torch::allclose(y16.to(torch::kFloat32), expected16, 1.0 / 64, 1e-3))
      << (y16.to(torch::kFloat32) - expected16).abs().max().item<double>();
  const auto meta = w4a16_linear(torch::empty({2, 256}, torch::Device(torch::kMeta)), c.packed);
  EXPECT_TRUE(meta.is_meta());
  EXPECT_EQ(meta.sizes(), torch::IntArrayRef({2, 600}));
}

TEST(W4A16, RejectsMisuse) {
  const auto c = make_case(8, 64, 32, Grid::k2, 7);
  torch::NoGradGuard no_grad;
  testing::expect_error([&] { w4a16_linear(torch::randn({2, 32}), c.packed); }, {"32 features", "expects 64"});
  testing::expect_error([&] { w4a16_linear_dequantized(torch::randn({2, 32}), c.packed); }, {"32 features", "expects 64"});

  auto bad_scales = c.packed;
  bad_scales.scales_OG = bad_scales.scales_OG.narrow(1, 0, 1);
  testing::expect_error([&] { bad_scales.validate("L"); }, {"L: weight_scale has shape", "expected [8, 2]"});
  auto bad_words = c.packed;
  bad_words.packed_OW = bad_words.packed_OW.narrow(1, 0, 7);
  testing::expect_error([&] { bad_words.validate("L"); }, {"7 words per row", "expected 8"});
  auto bad_group = c.packed;
  bad_group.group_size = 48;
  testing::expect_error([&] { bad_group.validate("L"); }, {"group size 48 does not divide in_features 64"});
  auto bad_dtype = c.packed;
  bad_dtype.packed_OW = bad_dtype.packed_OW.to(torch::kInt64);
  testing::expect_error([&] { bad_dtype.validate("L"); }, {"weight_packed must be int32"});
}

}  // namespace
}  // namespace k2f::quant
