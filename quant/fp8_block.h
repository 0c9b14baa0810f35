// FP8 e4m3 block-scaled weights as K2-Instruct ships them: each weight is an e4m3fn byte and
// `weight_scale_inv` (fp32) holds one multiplier per 128x128 block, w = fp8 * scale_inv. The
// bytes are decoded by hand (uint8 tensors), since LibTorch 1.13 has no float8 dtype.
// e4m3fn: 1 sign bit, 4 exponent bits (bias 7), 3 mantissa bits, no infinities; 0x7F and 0xFF
// are NaN; exponent 0 encodes subnormals m * 2^-9.
#pragma once

#include <cstdint>

#include <torch/types.h>

namespace k2f::quant {

// The value of one e4m3fn byte (NaN for 0x7F and 0xFF).
float e4m3_to_float(uint8_t byte);

// Decodes e4m3fn bytes (uint8, or float8_e4m3fn where LibTorch has it) of any shape to fp32.
// NaN codes are an error giving their count and the flat index of the first.
torch::Tensor decode_fp8_e4m3(const torch::Tensor& bytes);

// bytes_OI [O, I] times scale_inv [ceil(O/block), ceil(I/block)], each scale covering one
// block x block tile (the last row/column of tiles may be partial). Returns fp32 [O, I].
torch::Tensor dequantize_fp8_block(const torch::Tensor& bytes_OI, const torch::Tensor& scale_inv, int64_t block = 128);

}  // namespace k2f::quant
