// Fake quantisation for INT4 QAT: the forward pass sees the weight as the INT4 model will
// (dequantize(quantize(w)), in w's dtype), the backward pass is the straight-through estimator
// (the gradient reaches the fp32 master weight unchanged).
#pragma once

#include <torch/types.h>

#include "quant/int4_quantizer.h"

namespace k2f::quant {

// dequantize(quantize(w_OI)) with w_OI's dtype and the STE as its gradient. Bit for bit the
// weight an exported pack-quantized checkpoint dequantises to (for fp32 w; rounded once more
// to w's dtype otherwise).
torch::Tensor fake_quantize(const torch::Tensor& w_OI, const QuantOptions& options);

}  // namespace k2f::quant
