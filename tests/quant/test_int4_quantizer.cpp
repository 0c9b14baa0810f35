// quant/int4_quantizer.cpp: hand-worked groups on both grids (bf16-rounded scales, half-to-even
// codes, the -8 code only on minmax), agreement with an independent formula on random weights,
// zero groups, and the errors.
#include <gtest/gtest.h>

#include <limits>

#include "quant/int4_quantizer.h"
#include "test_util.h"

namespace k2f::quant {
namespace {

torch::Tensor quantizer_row(std::initializer_list<float> values) {
  return torch::tensor(std::vector<float>(values)).reshape({1, -1});
}

TEST(Int4Quantizer, GridNames) {
  EXPECT_EQ(parse_grid("k2"), Grid::k2);
  EXPECT_EQ(parse_grid("minmax"), Grid::minmax);
  EXPECT_STREQ(grid_name(Grid::minmax), "minmax");
  EXPECT_EQ(QuantOptions{}.group_size, 32);
  EXPECT_EQ(QuantOptions{}.grid, Grid::k2);
  k2f::testing::expect_error([] { parse_grid("int4"); }, {"\"int4\"", "k2", "minmax"});
}

TEST(Int4Quantizer, K2GridByHandWithBf16Scale) {
  // absmax 0.7 -> scale 0.1, stored as bf16 0.10009765625 and used as such:
  // 0.7/s = 6.993 -> 7, -0.35/s = -3.497 -> -3, 0.1/s = 0.999 -> 1, 0 -> 0.
  const auto q = quantize(quantizer_row({0.7f, -0.35f, 0.1f, 0.0f}), {4, Grid::k2});
  EXPECT_EQ(q.scales_OG.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(q.scales_OG.to(torch::kFloat64).item<double>(), 0.10009765625);
  EXPECT_TRUE(torch::equal(q.codes_OI, torch::tensor({7, -3, 1, 0}, torch::kInt8).reshape({1, 4})));
}

TEST(Int4Quantizer, RoundingIsHalfToEvenAndMinmaxUsesMinus8) {
  // minmax, absmax 7.5 -> scale 1: -7.5 -> -8, 7.5 -> 8 clamped to 7, 2.5 -> 2, 3.5 -> 4.
  const auto minmax = quantize(quantizer_row({-7.5f, 7.5f, 2.5f, 3.5f}), {4, Grid::minmax});
  EXPECT_EQ(minmax.scales_OG.to(torch::kFloat32).item<float>(), 1.0f);
  EXPECT_TRUE(torch::equal(minmax.codes_OI, torch::tensor({-8, 7, 2, 4}, torch::kInt8).reshape({1, 4})));
  // k2, absmax 7 -> scale 1: -7 -> -7 (never -8), 2.5 -> 2, -0.4 -> 0.
  const auto k2 = quantize(quantizer_row({7.0f, -7.0f, 2.5f, -0.4f}), {4, Grid::k2});
  EXPECT_EQ(k2.scales_OG.to(torch::kFloat32).item<float>(), 1.0f);
  EXPECT_TRUE(torch::equal(k2.codes_OI, torch::tensor({7, -7, 2, 0}, torch::kInt8).reshape({1, 4})));
}

TEST(Int4Quantizer, MatchesTheFormulaOnRandomWeights) {
  torch::manual_seed(17);  // Debian's LibTorch seeds its default generator randomly
  const auto w = torch::randn({64, 256}) * 0.02;
  for (const Grid grid : {Grid::k2, Grid::minmax}) {
    const double divisor = grid == Grid::k2 ? 7.0 : 7.5;
    const auto q = quantize(w, {32, grid});
    ASSERT_EQ(q.codes_OI.sizes(), w.sizes());
    ASSERT_EQ(q.scales_OG.sizes(), (std::vector<int64_t>{64, 8}));
    // Independent computation: per-group absmax through a loop over groups.
    for (int64_t g = 0; g < 8; ++g) {
      const auto block = w.narrow(1, g * 32, 32);
      const auto scale = (std::get<0>(block.abs().max(1)) / divisor).to(torch::kBFloat16);
      EXPECT_TRUE(torch::equal(q.scales_OG.select(1, g), scale)) << grid_name(grid) << " group " << g;
      const auto expected = torch::round(block / scale.to(torch::kFloat32).unsqueeze(1))
                                .clamp(grid == Grid::k2 ? -7 : -8, 7)
                                .to(torch::kInt8);
      EXPECT_TRUE(torch::equal(q.codes_OI.narrow(1, g * 32, 32), expected)) << grid_name(grid) << " group " << g;
    }
    // Scales are bf16 values: converting through fp32 and back changes nothing.
    EXPECT_TRUE(torch::equal(q.scales_OG.to(torch::kFloat32).to(torch::kBFloat16), q.scales_OG));
    const int64_t lowest = q.codes_OI.min().item<int64_t>();
    if (grid == Grid::k2) {
      EXPECT_EQ(lowest, -7);
      EXPECT_EQ(q.codes_OI.max().item<int64_t>(), 7);
    } else {
      EXPECT_EQ(lowest, -8);  // 64*8 groups: some negative absmax lands on -7.5 or below
    }
    // Every value within half a step, plus at the clamped end of minmax 7.5 times the bf16
    // rounding of the scale (relative 2^-8): 0.5 + 7.5/256 < 0.53 steps.
    const auto error = (dequantize(q.codes_OI, q.scales_OG, 32) - w).abs();
    const auto step = q.scales_OG.to(torch::kFloat32).repeat_interleave(32, 1);
    EXPECT_TRUE((error <= step * 0.53).all().item<bool>()) << grid_name(grid) << " " << (error / step).max().item<double>();
  }
}

TEST(Int4Quantizer, ZeroGroupGivesZeroScaleAndCodes) {
  auto w = torch::full({2, 8}, 7.0f);  // k2 grid: scale 1 for the non-zero groups
  w.narrow(1, 4, 4).zero_();
  w[1][5] = -0.0f;
  const auto q = quantize(w, {4, Grid::k2});
  EXPECT_EQ(q.scales_OG[0][1].item<float>(), 0.0f);
  EXPECT_EQ(q.scales_OG[1][1].item<float>(), 0.0f);
  EXPECT_TRUE(torch::equal(q.codes_OI.narrow(1, 4, 4), torch::zeros({2, 4}, torch::kInt8)));
  const auto back = dequantize(q.codes_OI, q.scales_OG, 4);
  EXPECT_FALSE(torch::isnan(back).any().item<bool>());
  EXPECT_TRUE(torch::equal(back.narrow(1, 4, 4), torch::zeros({2, 4})));
  EXPECT_TRUE(torch::equal(back.narrow(1, 0, 4), torch::full({2, 4}, 7.0f)));
}

TEST(Int4Quantizer, BadInputIsReported) {
  using k2f::testing::expect_error;
  expect_error([] { quantize(torch::zeros({4, 48}), {32, Grid::k2}); }, {"group_size (32)", "in_features (48)"});
  expect_error([] { quantize(torch::zeros({4, 32}), {0, Grid::k2}); }, {"positive", "0"});
  expect_error([] { quantize(torch::zeros({32}), {32, Grid::k2}); }, {"2-D", "1 dims"});
  expect_error([] { quantize(torch::zeros({4, 32}, torch::kInt32), {32, Grid::k2}); }, {"floating"});
  auto bad = torch::zeros({2, 32});
  bad[1][7] = std::numeric_limits<float>::infinity();
  expect_error([&] { quantize(bad, {32, Grid::k2}); }, {"non-finite", "[2, 32]"});
  expect_error([] { dequantize(torch::zeros({4, 64}, torch::kInt8), torch::zeros({4, 3}, torch::kBFloat16), 32); },
               {"expected [4, 2]", "got [4, 3]"});
}

}  // namespace
}  // namespace k2f::quant
