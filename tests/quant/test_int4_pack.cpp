// quant/int4_pack.cpp: golden int32 words worked out by hand from the layout (u = q + 8, column
// 8j+i in bits 4i..4i+3 of word j), exact round trips for every code, padding and bad input.
#include <gtest/gtest.h>

#include <vector>

#include "quant/int4_pack.h"
#include "test_util.h"

namespace k2f::quant {
namespace {

torch::Tensor pack_test_codes(const std::vector<std::vector<int8_t>>& rows) {
  const int64_t O = static_cast<int64_t>(rows.size());
  const int64_t I = static_cast<int64_t>(rows.front().size());
  auto codes = torch::empty({O, I}, torch::kInt8);
  for (int64_t o = 0; o < O; ++o) {
    for (int64_t i = 0; i < I; ++i) codes.index_put_({o, i}, rows[o][i]);
  }
  return codes;
}

TEST(Int4Pack, GoldenWordsComputedByHand) {
  const auto codes = pack_test_codes({
      {0, 1, 2, 3, 4, 5, 6, 7},          // u = 8..15        -> 0xFEDCBA98
      {-8, -7, -6, -5, -4, -3, -2, -1},  // u = 0..7         -> 0x76543210
      {0, 0, 0, 0, 0, 0, 0, 0},          // u = 8 everywhere -> 0x88888888
      {7, -8, 0, 0, 0, 0, 0, 0},         // nibbles F, 0, 8.. -> 0x8888880F
      {7, 7, 7, 7, 7, 7, 7, 7},          // 0xFFFFFFFF
      {-8, -8, -8, -8, -8, -8, -8, -8},  // 0x00000000
  });
  const auto packed = pack_int4(codes);
  ASSERT_EQ(packed.scalar_type(), torch::kInt32);
  ASSERT_EQ(packed.sizes(), (std::vector<int64_t>{6, 1}));
  // The words as int32 (two's complement of the hex values above).
  const std::vector<int32_t> expected{-19088744, 1985229328, -2004318072, -2004318193, -1, 0};
  for (int64_t r = 0; r < 6; ++r) EXPECT_EQ(packed[r][0].item<int32_t>(), expected[r]) << "row " << r;
  EXPECT_TRUE(torch::equal(unpack_int4(packed, 8), codes));
}

TEST(Int4Pack, WordJHoldsColumns8jTo8jPlus7) {
  std::vector<int8_t> row(16, 0);
  for (int i = 0; i < 8; ++i) row[8 + i] = static_cast<int8_t>(i - 8);  // second word: -8..-1
  const auto packed = pack_int4(pack_test_codes({row}));
  ASSERT_EQ(packed.sizes(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(packed[0][0].item<int32_t>(), -2004318072);  // 0x88888888
  EXPECT_EQ(packed[0][1].item<int32_t>(), 1985229328);   // 0x76543210
}

TEST(Int4Pack, RoundTripIsExactForEveryCode) {
  torch::manual_seed(3);  // Debian's LibTorch seeds its default generator randomly
  auto codes = torch::randint(-8, 8, {37, 96}, torch::kInt8);
  codes.index_put_({0, torch::indexing::Slice(0, 16)}, torch::arange(-8, 8, torch::kInt8));  // every code
  const auto packed = pack_int4(codes);
  EXPECT_EQ(packed.sizes(), (std::vector<int64_t>{37, 12}));
  const auto back = unpack_int4(packed, 96);
  EXPECT_EQ(back.scalar_type(), torch::kInt8);
  EXPECT_TRUE(torch::equal(back, codes));
  // Each code alone in each of the eight nibble positions.
  for (int code = -8; code <= 7; ++code) {
    for (int position = 0; position < 8; ++position) {
      auto single = torch::zeros({1, 8}, torch::kInt8);
      single[0][position] = code;
      EXPECT_TRUE(torch::equal(unpack_int4(pack_int4(single), 8), single)) << code << " at " << position;
    }
  }
}

TEST(Int4Pack, PartialWordIsPaddedWithZeroNibbles) {
  // 12 columns: the second word holds columns 8..11 and four padding nibbles u = 0.
  std::vector<int8_t> row{0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
  const auto codes = pack_test_codes({row});
  const auto packed = pack_int4(codes);
  ASSERT_EQ(packed.sizes(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(packed[0][1].item<int32_t>(), 0xCBA9);  // u = 9, 10, 11, 12
  EXPECT_TRUE(torch::equal(unpack_int4(packed, 12), codes));
}

TEST(Int4Pack, BadInputIsReported) {
  using k2f::testing::expect_error;
  auto out_of_range = torch::zeros({2, 8}, torch::kInt8);
  out_of_range[1][3] = 8;
  expect_error([&] { pack_int4(out_of_range); }, {"[-8, 7]", "max 8"});
  expect_error([&] { pack_int4(torch::zeros({2, 8}, torch::kInt32)); }, {"int8"});
  expect_error([&] { pack_int4(torch::zeros({8}, torch::kInt8)); }, {"2-D"});
  const auto packed = torch::zeros({2, 3}, torch::kInt32);
  expect_error([&] { unpack_int4(packed, 32); }, {"expected 4", "in_features 32", "got 3"});
  expect_error([&] { unpack_int4(packed.to(torch::kInt64), 24); }, {"int32"});
}

}  // namespace
}  // namespace k2f::quant
