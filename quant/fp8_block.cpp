// FP8 e4m3fn decoding through a 256-entry table and 128x128 block-scaled dequantisation (see
// fp8_block.h).
#include "quant/fp8_block.h"

#include <cmath>
#include <limits>

#include "base/error.h"
#include "base/torch_compat.h"

namespace k2f::quant {

namespace {

constexpr int kE4m3Bias = 7;

bool is_e4m3_nan(uint8_t byte) { return (byte & 0x7F) == 0x7F; }

// fp32 [256]: the value of every byte.
torch::Tensor e4m3_table() {
  auto table = torch::empty({256}, torch::kFloat32);
  auto* values = table.data_ptr<float>();
  for (int byte = 0; byte < 256; ++byte) values[byte] = e4m3_to_float(static_cast<uint8_t>(byte));
  return table;
}

torch::Tensor as_fp8_bytes(const torch::Tensor& bytes) {
#if K2F_HAS_FLOAT8
  if (bytes.scalar_type() == torch::kFloat8_e4m3fn) return bytes.view(torch::kByte);
#endif
  check(bytes.scalar_type() == torch::kByte, "FP8 e4m3 weights must be uint8 bytes, got ", bytes.scalar_type());
  return bytes;
}

}  // namespace

float e4m3_to_float(uint8_t byte) {
  if (is_e4m3_nan(byte)) return std::numeric_limits<float>::quiet_NaN();
  const int exponent = (byte >> 3) & 0xF;
  const int mantissa = byte & 0x7;
  const float magnitude = exponent == 0 ? std::ldexp(static_cast<float>(mantissa), 1 - kE4m3Bias - 3)
                                        : std::ldexp(static_cast<float>(8 + mantissa), exponent - kE4m3Bias - 3);
  return (byte & 0x80) != 0 ? -magnitude : magnitude;
}

torch::Tensor decode_fp8_e4m3(const torch::Tensor& bytes) {
  const auto raw = as_fp8_bytes(bytes);
  const auto flat = raw.reshape({-1});
  const auto nan_mask = torch::bitwise_and(flat, 0x7F) == 0x7F;
  const int64_t nan_count = nan_mask.sum().item<int64_t>();
  if (nan_count > 0) {
    const int64_t first = nan_mask.nonzero().index({0, 0}).item<int64_t>();
    fail("FP8 e4m3 weights hold ", nan_count, " NaN code(s) (0x7F/0xFF); the first at flat index ", first);
  }
  static const torch::Tensor table = e4m3_table();
  return table.to(raw.device()).index_select(0, flat.to(torch::kInt64)).reshape(raw.sizes());
}

torch::Tensor dequantize_fp8_block(const torch::Tensor& bytes_OI, const torch::Tensor& scale_inv, int64_t block) {
  check(block > 0, "FP8 block size must be positive, got ", block);
  check(bytes_OI.dim() == 2, "FP8 block dequantisation expects a 2-D weight [out, in], got ", bytes_OI.dim(),
        " dims");
  const int64_t O = bytes_OI.size(0);
  const int64_t I = bytes_OI.size(1);
  const int64_t row_blocks = (O + block - 1) / block;
  const int64_t col_blocks = (I + block - 1) / block;
  check(scale_inv.dim() == 2 && scale_inv.size(0) == row_blocks && scale_inv.size(1) == col_blocks,
        "FP8 weight_scale_inv: expected [", row_blocks, ", ", col_blocks, "] for a weight [", O, ", ", I,
        "] with ", block, "x", block, " blocks, got ", scale_inv.sizes());
  check(torch::isFloatingType(scale_inv.scalar_type()), "FP8 weight_scale_inv must be floating, got ",
        scale_inv.scalar_type());
  const auto w_OI = decode_fp8_e4m3(bytes_OI);
  const auto scale_OI = scale_inv.to(torch::kFloat32)
                            .repeat_interleave(block, 0)
                            .narrow(0, 0, O)
                            .repeat_interleave(block, 1)
                            .narrow(1, 0, I);
  return w_OI * scale_OI;
}

}  // namespace k2f::quant
