// model/rope.cpp: YaRN bounds and attention scale for K2 (hand values), frequencies against a
// scalar loop, and the HF de-interleave + rotate_half equal to rotating the pairs (2i, 2i+1).
#include <gtest/gtest.h>

#include <cmath>

#include "model/rope.h"
#include "tiny_config.h"

namespace k2f::model {
namespace {

TEST(Rope, KimiK2YarnRampAndSoftmaxScale) {
  auto c = kimi_k2_config();
  const auto ramp = yarn_ramp(c);
  EXPECT_EQ(ramp.low, 19);
  // find_dim(1) = 64 ln(4096 / 2pi) / (2 ln 50000) = 19.1..; ceil -> 20
  EXPECT_EQ(ramp.high, 20);
  // (192)^-0.5 * (0.1 ln 32 + 1)^2
  EXPECT_NEAR(c.softmax_scale(), 0.130861, 5e-7);
  c.rope_scaling->factor = 64;  // K2-Thinking
  EXPECT_NEAR(c.softmax_scale(), 0.144680, 5e-7);
  EXPECT_DOUBLE_EQ(rope_cos_sin_scale(c), 1.0);  // mscale == mscale_all_dim
}

TEST(Rope, InvFreqMatchesScalarFormula) {
  const auto c = kimi_k2_config();
  const auto inv_freq = rope_inv_freq(c);
  const double d = 64, theta = 50000, factor = 32, low = 19, high = 20;
  for (int i = 0; i < 32; ++i) {
    const double extra = std::pow(theta, -2.0 * i / d);
    const double ramp = std::min(1.0, std::max(0.0, (i - low) / (high - low)));
    const double expected = extra / factor * ramp + extra * (1 - ramp);
    EXPECT_NEAR(inv_freq[i].item<double>(), expected, 1e-15 * std::max(1.0, expected)) << i;
  }
}

TEST(Rope, DeinterleavedRotateHalfRotatesAdjacentPairs) {
  const auto c = testing::tiny_config();
  const int64_t T = 5, R = c.qk_rope_head_dim;
  torch::manual_seed(0);
  const auto x = torch::randn({1, T, 1, R}, torch::kFloat64);
  const auto positions = torch::arange(T).unsqueeze(0) * 7;
  const auto rotated = apply_rope(x, rope_tables(c, positions));
  const auto inv_freq = rope_inv_freq(c);
  const double scale = rope_cos_sin_scale(c);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t i = 0; i < R / 2; ++i) {
      const double angle = 7.0 * t * inv_freq[i].item<double>();
      const double a = x[0][t][0][2 * i].item<double>(), b = x[0][t][0][2 * i + 1].item<double>();
      // The tables are fp32, so agreement is to fp32 rounding.
      EXPECT_NEAR(rotated[0][t][0][i].item<double>(), scale * (a * std::cos(angle) - b * std::sin(angle)), 1e-6);
      EXPECT_NEAR(rotated[0][t][0][i + R / 2].item<double>(), scale * (b * std::cos(angle) + a * std::sin(angle)), 1e-6);
    }
  }
}

}  // namespace
}  // namespace k2f::model
