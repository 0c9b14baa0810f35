// Fake quantisation for INT4 QAT: the forward pass sees the weight as the INT4 model will
// (dequantize(quantize(w)), in w's dtype), the backward pass is the straight-through estimator
// (the gradient reaches the fp32 master weight unchanged).
#pragma once

#include <torch/types.h>

#include <optional>

#include "quant/int4_quantizer.h"

namespace k2f::quant {

// dequantize(quantize(w_OI)) in out_dtype (default: w_OI's dtype) and the STE as its gradient (in
// w_OI's dtype). Bit for bit the weight an exported pack-quantized checkpoint dequantises to, in
// fp32, rounded once to out_dtype: equal to fake_quantize(w_OI, options).to(out_dtype), without
// the fp32 copy.
torch::Tensor fake_quantize(const torch::Tensor& w_OI, const QuantOptions& options,
                            std::optional<torch::ScalarType> out_dtype = std::nullopt);

}  // namespace k2f::quant
