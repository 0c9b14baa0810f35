// Packing INT4 codes eight to an int32 word (see int4_pack.h), with whole-tensor ops in int64 so
// the top nibble never overflows a signed 32-bit shift; words are wrapped to int32 explicitly.
#include "quant/int4_pack.h"

#include "base/error.h"

namespace k2f::quant {

namespace {

constexpr int64_t kCodesPerWord = 8;

// The bit offsets 0, 4, ..., 28 of the eight nibbles of a word, as int64 [8].
torch::Tensor nibble_shifts(const torch::Device& device) {
  return torch::arange(0, 32, 4, torch::TensorOptions().dtype(torch::kInt64).device(device));
}

}  // namespace

torch::Tensor pack_int4(const torch::Tensor& codes_OI) {
  check(codes_OI.dim() == 2, "pack_int4 expects 2-D codes [out, in], got ", codes_OI.dim(), " dims");
  check(codes_OI.scalar_type() == torch::kInt8, "pack_int4 expects int8 codes, got ", codes_OI.scalar_type());
  const int64_t O = codes_OI.size(0);
  const int64_t I = codes_OI.size(1);
  if (codes_OI.numel() > 0) {
    const int64_t low = codes_OI.min().item<int64_t>();
    const int64_t high = codes_OI.max().item<int64_t>();
    check(low >= -8 && high <= 7, "pack_int4: codes must lie in [-8, 7], got min ", low, " and max ", high);
  }
  const int64_t W = (I + kCodesPerWord - 1) / kCodesPerWord;
  auto u_OI = codes_OI.to(torch::kInt64) + 8;
  if (W * kCodesPerWord != I) {
    u_OI = torch::cat({u_OI, torch::zeros({O, W * kCodesPerWord - I}, u_OI.options())}, 1);
  }
  // The nibbles are disjoint, so their sum is their bitwise OR: a word in [0, 2^32).
  const auto word_OW = torch::bitwise_left_shift(u_OI.reshape({O, W, kCodesPerWord}), nibble_shifts(codes_OI.device()))
                           .sum(-1);
  const int64_t two_pow_32 = int64_t{1} << 32;
  const auto signed_OW = torch::where(word_OW >= (int64_t{1} << 31), word_OW - two_pow_32, word_OW);
  return signed_OW.to(torch::kInt32);
}

torch::Tensor unpack_int4(const torch::Tensor& packed_OW, int64_t in_features) {
  check(packed_OW.dim() == 2, "unpack_int4 expects 2-D packed words [out, in/8], got ", packed_OW.dim(), " dims");
  check(packed_OW.scalar_type() == torch::kInt32, "unpack_int4 expects int32 words, got ", packed_OW.scalar_type());
  check(in_features >= 0, "unpack_int4: in_features must be non-negative, got ", in_features);
  const int64_t O = packed_OW.size(0);
  const int64_t W = (in_features + kCodesPerWord - 1) / kCodesPerWord;
  check(packed_OW.size(1) == W, "unpack_int4: packed words per row: expected ", W, " for in_features ", in_features,
        ", got ", packed_OW.size(1));
  const auto word_OW1 = torch::bitwise_and(packed_OW.to(torch::kInt64), int64_t{0xFFFFFFFF}).unsqueeze(-1);
  const auto u_OW8 = torch::bitwise_and(torch::bitwise_right_shift(word_OW1, nibble_shifts(packed_OW.device())), 0xF);
  return (u_OW8.reshape({O, W * kCodesPerWord}).narrow(1, 0, in_features) - 8).to(torch::kInt8);
}

}  // namespace k2f::quant
