// quant/fp8_block.cpp: e4m3fn bytes against values worked out by hand (normals, subnormals, zero,
// max, NaN codes), NaN codes rejected, and 128x128 block-scaled dequantisation on shapes that are
// not multiples of the block.
#include <gtest/gtest.h>

#include <cmath>
#include <utility>
#include <vector>

#include "quant/fp8_block.h"
#include "test_util.h"

namespace k2f::quant {
namespace {

// (byte, value): sign | 4 exponent bits (bias 7) | 3 mantissa bits, computed by hand.
const std::vector<std::pair<uint8_t, float>> kHandDecodedE4m3{
    {0x00, 0.0f},                   // zero
    {0x38, 1.0f},                   // e=7 m=0
    {0x40, 2.0f},                   // e=8 m=0
    {0xC0, -2.0f},                  // sign, e=8
    {0x30, 0.5f},                   // e=6
    {0x39, 1.125f},                 // e=7 m=1: 1 + 1/8
    {0x3C, 1.5f},                   // e=7 m=4
    {0x4B, 5.5f},                   // e=9 m=3: 2^2 * (1 + 3/8)
    {0x01, 0.001953125f},           // smallest subnormal 2^-9
    {0x07, 0.013671875f},           // largest subnormal 7 * 2^-9
    {0x08, 0.015625f},              // smallest normal 2^-6
    {0x7E, 448.0f},                 // max: e=15 m=6 -> 2^8 * 1.75
    {0xFE, -448.0f},
    {0x81, -0.001953125f},
};

TEST(Fp8Block, DecodesHandComputedValues) {
  for (const auto& [byte, value] : kHandDecodedE4m3) {
    EXPECT_EQ(e4m3_to_float(byte), value) << "byte 0x" << std::hex << int(byte);
  }
  EXPECT_TRUE(std::signbit(e4m3_to_float(0x80)));  // negative zero
  EXPECT_EQ(e4m3_to_float(0x80), 0.0f);
  EXPECT_TRUE(std::isnan(e4m3_to_float(0x7F)));
  EXPECT_TRUE(std::isnan(e4m3_to_float(0xFF)));
  EXPECT_FALSE(std::isnan(e4m3_to_float(0x78)));  // e=15 m=0 is 256, not infinity (fn variant)
  EXPECT_EQ(e4m3_to_float(0x78), 256.0f);

  std::vector<uint8_t> bytes;
  std::vector<float> values;
  for (const auto& [byte, value] : kHandDecodedE4m3) {
    bytes.push_back(byte);
    values.push_back(value);
  }
  const auto byte_tensor = torch::from_blob(bytes.data(), {static_cast<int64_t>(bytes.size())}, torch::kByte).clone();
  const auto decoded = decode_fp8_e4m3(byte_tensor.reshape({2, -1}));
  EXPECT_EQ(decoded.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(decoded.reshape({-1}), torch::tensor(values)));
}

TEST(Fp8Block, NanCodesAreRejected) {
  auto bytes = torch::full({3, 4}, 0x38, torch::kByte);
  bytes[1][1] = 0xFF;
  bytes[2][3] = 0x7F;
  k2f::testing::expect_error([&] { decode_fp8_e4m3(bytes); }, {"2 NaN", "flat index 5"});
  k2f::testing::expect_error([&] { dequantize_fp8_block(bytes, torch::ones({1, 1}), 128); }, {"NaN"});
  k2f::testing::expect_error([] { decode_fp8_e4m3(torch::zeros({4}, torch::kInt8)); }, {"uint8"});
}

TEST(Fp8Block, EachScaleCoversItsBlockIncludingPartialOnes) {
  // 130 x 200 with 128 blocks: scale_inv is [2, 2], the last row and column of tiles partial.
  const auto bytes = torch::full({130, 200}, 0x38, torch::kByte);  // every weight 1.0
  const auto scale_inv = torch::tensor({{2.0f, 3.0f}, {5.0f, 7.0f}});
  const auto w = dequantize_fp8_block(bytes, scale_inv);
  ASSERT_EQ(w.sizes(), (std::vector<int64_t>{130, 200}));
  EXPECT_EQ(w[0][0].item<float>(), 2.0f);
  EXPECT_EQ(w[127][127].item<float>(), 2.0f);
  EXPECT_EQ(w[0][128].item<float>(), 3.0f);
  EXPECT_EQ(w[127][199].item<float>(), 3.0f);
  EXPECT_EQ(w[128][0].item<float>(), 5.0f);
  EXPECT_EQ(w[129][127].item<float>(), 5.0f);
  EXPECT_EQ(w[128][128].item<float>(), 7.0f);
  EXPECT_EQ(w[129][199].item<float>(), 7.0f);
  EXPECT_EQ(w.sum().item<double>(), 2.0 * 128 * 128 + 3.0 * 128 * 72 + 5.0 * 2 * 128 + 7.0 * 2 * 72);
}

TEST(Fp8Block, RandomBytesMatchAnElementwiseLoop) {
  torch::manual_seed(29);  // Debian's LibTorch seeds its default generator randomly
  auto bytes = torch::randint(0, 256, {70, 45}, torch::kByte);
  bytes.masked_fill_(torch::bitwise_and(bytes, 0x7F) == 0x7F, 0x38);  // no NaN codes
  const auto scale_inv = torch::rand({3, 2}) + 0.5;
  const int64_t block = 32;
  const auto w = dequantize_fp8_block(bytes, scale_inv, block);
  const auto* raw = bytes.data_ptr<uint8_t>();
  const auto scales = scale_inv.accessor<float, 2>();
  auto expected = torch::empty({70, 45});
  auto out = expected.accessor<float, 2>();
  for (int64_t o = 0; o < 70; ++o) {
    for (int64_t i = 0; i < 45; ++i) out[o][i] = e4m3_to_float(raw[o * 45 + i]) * scales[o / block][i / block];
  }
  EXPECT_TRUE(torch::equal(w, expected));
}

TEST(Fp8Block, ScaleShapeMustMatchTheBlocks) {
  const auto bytes = torch::zeros({130, 200}, torch::kByte);
  k2f::testing::expect_error([&] { dequantize_fp8_block(bytes, torch::ones({1, 2})); },
                             {"expected [2, 2]", "[130, 200]", "got [1, 2]"});
  k2f::testing::expect_error([&] { dequantize_fp8_block(bytes, torch::ones({2, 2}), 0); }, {"positive", "0"});
}

}  // namespace
}  // namespace k2f::quant
