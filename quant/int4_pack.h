// The compressed-tensors "pack-quantized" layout K2 Thinking ships for INT4 weights: each code q
// in [-8, 7] is stored as u = q + 8 (0..15); int32 word j of a row holds columns 8j..8j+7, column
// 8j+i in bits 4i..4i+3 (the lowest column in the least significant nibble). A row whose length
// is not a multiple of 8 is padded with u = 0, as compressed-tensors' pack_to_int32 does.
#pragma once

#include <cstdint>

#include <torch/types.h>

namespace k2f::quant {

// codes_OI int8 in [-8, 7] -> packed int32 [O, ceil(I/8)]. Errors name an out-of-range code.
torch::Tensor pack_int4(const torch::Tensor& codes_OI);

// packed int32 [O, W] -> int8 codes [O, in_features]; W must be ceil(in_features / 8).
torch::Tensor unpack_int4(const torch::Tensor& packed_OW, int64_t in_features);

}  // namespace k2f::quant
