// Symmetric INT4 group quantisation of a linear weight along its input dim, as K2 Thinking ships
// its routed experts (W4A16, no zero point). The scale is rounded to bf16 before it is used, so
// what QAT trains with is exactly what the exported bf16 `weight_scale` dequantises to.
// Legend: O out_features, I in_features, G = I / group_size groups per row.
#pragma once

#include <cstdint>
#include <string>

#include <torch/types.h>

namespace k2f::quant {

// The two code grids (K2_REFERENCE section 5). Both dequantise as w = q * scale.
//   k2:     scale = absmax / 7,   q = clamp(round(w / scale), -7, 7)  (15 codes, symmetric)
//   minmax: scale = absmax / 7.5, q = clamp(round(w / scale), -8, 7)  (compressed-tensors observer)
// The default is k2: analyses of the released K2-Thinking weights find only 15 codes in use, and a
// symmetric grid keeps w and -w on mirrored codes.
enum class Grid { k2, minmax };

// "k2" or "minmax"; anything else is an error naming the value.
Grid parse_grid(const std::string& name);
const char* grid_name(Grid grid);

struct QuantOptions {
  int64_t group_size = 32;
  Grid grid = Grid::k2;
};

struct QuantizedWeight {
  torch::Tensor codes_OI;   // int8 in [-8, 7] ([-7, 7] on the k2 grid)
  torch::Tensor scales_OG;  // bf16, one per group of group_size input columns
};

// Quantises a 2-D floating weight w_OI (any float dtype; computed in fp32). A group whose values
// are all zero gets scale 0 and codes 0. Errors: not 2-D, not floating, non-finite values, group
// size not positive or not dividing in_features.
QuantizedWeight quantize(const torch::Tensor& w_OI, const QuantOptions& options);

// codes_OI * scales (each scale repeated over its group), in fp32. The product is exact: a 4-bit
// code times a bf16 scale fits in fp32's mantissa.
torch::Tensor dequantize(const torch::Tensor& codes_OI, const torch::Tensor& scales_OG, int64_t group_size);

namespace detail {
// The shared core of quantize() and fake_quantize(): codes as fp32 [O, G, group] and bf16 scales
// [O, G]. Checks shapes and options but not finiteness (the QAT hot path skips that pass).
struct GroupCodes {
  torch::Tensor codes_OGg;  // fp32, integral values
  torch::Tensor scales_OG;  // bf16
};
GroupCodes quantize_groups(const torch::Tensor& w_OI, const QuantOptions& options);

// The checks quantize_groups makes: a 2-D floating weight whose in_features the group size divides.
void check_quantizable(const torch::Tensor& w_OI, const QuantOptions& options);

// The grid's scale divisor (absmax / max_code) and lowest code.
float grid_max_code(Grid grid);
float grid_low_code(Grid grid);
}  // namespace detail

}  // namespace k2f::quant
