// The W4A16 kernels of CPUs with AVX-512, for any number of activation rows. At batch 1 (decoding)
// a linear is a GEMV: every weight is used once, so the time is that of reading the weight, and
// INT4 reads a quarter of bf16's bytes only if unpacking keeps up with the memory. These kernels
// unpack in registers and never write a dequantised tile; with more rows (prefill, batched RL
// sampling) each unpacked block serves up to 8 activation rows and each activation load 2-4
// output rows:
// - bf16 activations: codes become exact bf16 integers through a 32-entry vpermw table
//   and meet the activations in vdpbf16ps pair products (exact in fp32), one scale per group after;
// - fp32 activations (score, --dequantize comparisons): a per-group vpermps table of (u - 8) * scale
//   and fp32 FMAs, so the result is the fp32 product up to summation order.
// w4a16.cpp chooses them and falls back to its portable tiled GEMM elsewhere.
#pragma once

#include "quant/w4a16.h"

namespace k2f::quant::direct {

enum class Kernel {
  none,        // the tiled path applies
  fp32,        // fp32 FMAs on activations converted to fp32 (fp32 or fp16 inputs)
  bf16_pairs,  // vdpbf16ps on bf16 activations
};

// The kernel for activations of dtype x_dtype on this CPU; none where none applies (fp64,
// in_features or group size off the kernels' 32/64-column blocks, no AVX-512).
Kernel choose(const PackedInt4Weight& weight, torch::ScalarType x_dtype);

// x_NI [N, I] times the packed weight -> fp32 [N, O], split across the intra-op threads.
torch::Tensor linear(const torch::Tensor& x_NI, const PackedInt4Weight& weight, Kernel kernel);

}  // namespace k2f::quant::direct
