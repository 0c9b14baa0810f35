// Matrix products whose sums stay fp32 when the operands are bf16, on every CPU. LibTorch 1.13
// (Debian 12's) multiplies bf16 matrices on the CPU with oneDNN only where AVX-512 is present;
// elsewhere a fallback loop accumulates three of the four operand layouts in bf16: 4.7% relative
// error at k = 1024 and 12-17% at k = 4096 on a Zen 3 (AVX2), enough to make bf16 training diverge
// (the backward's products take those layouts). A one-time probe checks the LibTorch at hand; where
// it fails, bf16 products on the CPU multiply the same bf16 values in fp32 and round the result to
// bf16, which is what an accurate bf16 GEMM returns. Elsewhere (CUDA, AVX-512, fp32) these are the
// LibTorch calls themselves.
#pragma once

#include <torch/types.h>

namespace k2f {

// True when LibTorch's bf16 matrix product on the CPU keeps fp32 sums in every operand layout
// (probed once per process, on fixed values: no random generator is touched).
bool cpu_bf16_matmul_is_accurate();

// torch::nn::functional::linear(x, weight) (weight in x's dtype, no bias), torch::matmul and
// torch::bmm with fp32 sums for bf16 operands; results and gradients keep the operands' dtype.
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight);
torch::Tensor matmul(const torch::Tensor& a, const torch::Tensor& b);
torch::Tensor bmm(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace k2f
