// W4A16 inference: y = x W^T where W stays packed (int32 words of eight 4-bit codes,
// compressed-tensors layout) with one bf16 scale per group. On a CPU with AVX-512 the direct
// kernels of w4a16_direct.h unpack in registers and never write dequantised weights. The portable
// path (other CPUs, fp64) dequantises a tile of output rows at a time into a small fp32 buffer
// (through a 16-entry table per group) and multiplies it with the activations as one GEMM; the
// whole dequantised matrix never exists. Either way the result equals x @ dequantize(W)^T, with x
// as given and the sum in fp32 (fp64 for fp64 x), up to summation order.
// Legend: N rows of activations, I in_features, O out_features, W = I/8 words, G = I/group groups.
#pragma once

#include <memory>

#include "model/layers.h"

namespace k2f::quant {

struct PackedInt4Weight {
  torch::Tensor packed_OW;  // int32 [O, ceil(I/8)]
  torch::Tensor scales_OG;  // bf16 (or fp16/fp32) [O, I/group_size]
  int64_t in_features = 0;
  int64_t group_size = 32;
  int64_t out_features() const { return packed_OW.size(0); }
  // Checks dtypes and shapes against each other; errors start with `where`.
  void validate(const std::string& where) const;
  uint64_t bytes() const;
};

// x [..., I] (bf16, fp16 or fp32) -> [..., O] in x's dtype. W is frozen: when x requires grad,
// backward gives x its gradient grad_y W (dequantised a tile of rows at a time) and W none.
torch::Tensor w4a16_linear(const torch::Tensor& x, const PackedInt4Weight& weight);

// The path off the CPU (any device, any dtype): the whole weight dequantised with tensor ops for
// this product (in x's dtype: bf16 x multiplies a bf16-rounded weight, as GPU INT4 kernels do),
// then one matmul; x's gradient through autograd. What w4a16_linear runs on a GPU; exposed so
// that tests run it on the CPU too.
torch::Tensor w4a16_linear_dequantized(const torch::Tensor& x, const PackedInt4Weight& weight);
// fp32 [O, I] dequantisation with tensor ops on the packed weight's device (equal to dequantize_rows).
torch::Tensor dequantize_with_tensor_ops(const PackedInt4Weight& weight);

// The portable tiled path, whatever the CPU: what w4a16_linear runs where no direct kernel applies,
// exposed so tests cover it on CPUs that have one.
torch::Tensor w4a16_linear_tiled(const torch::Tensor& x, const PackedInt4Weight& weight);

// A Linear kernel that computes with the packed weight (the module's own weight may be empty).
std::shared_ptr<model::LinearKernel> make_w4a16_kernel(PackedInt4Weight weight);

// The packed weight a make_w4a16_kernel kernel computes with; nullptr for any other kernel.
const PackedInt4Weight* packed_weight_of(const model::LinearKernel& kernel);

// fp32 [rows, I] dequantisation of output rows [row_begin, row_begin + rows): the reference the
// kernel's tiles are built with, exposed for tests and --dequantize.
torch::Tensor dequantize_rows(const PackedInt4Weight& weight, int64_t row_begin, int64_t rows);

}  // namespace k2f::quant
