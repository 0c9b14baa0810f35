// quant/w4a16_direct.cpp: each AVX-512 kernel this CPU can run equals the exact product of the
// activations it is given (bf16 ones for bf16_pairs) with dequantize(W), to fp32 summation
// rounding, for every activation-row block (8, 4, 2, 1) and more rows than one block, output rows
// split unevenly across threads and tiles, group sizes 32 to 128 and bf16 or fp32 scales; and
// choose() keeps fp64 and shapes off the kernels' blocks away from them.
#include <gtest/gtest.h>

#include "quant/int4_pack.h"
#include "quant/int4_quantizer.h"
#include "quant/w4a16_direct.h"

namespace k2f::quant::direct {
namespace {

struct Case {
  PackedInt4Weight packed;
  torch::Tensor dequantized_OI;  // fp32, exact
};

Case make_case(int64_t O, int64_t I, int64_t group, uint64_t seed) {
  torch::manual_seed(seed);
  const auto w = torch::randn({O, I}) * 0.1;
  const auto q = quantize(w, QuantOptions{group, Grid::minmax});
  return {PackedInt4Weight{pack_int4(q.codes_OI), q.scales_OG, I, group}, dequantize(q.codes_OI, q.scales_OG, group)};
}

// Largest |got - exact| relative to the largest |exact|: fp32 sums of I terms stay near 1e-7.
double relative_error(const torch::Tensor& got, const torch::Tensor& exact) {
  return (got.to(torch::kFloat64) - exact).abs().max().item<double>() / exact.abs().max().item<double>();
}

TEST(W4A16Direct, KeepsFp64AndOddShapesOffTheirBlocks) {
  const auto c = make_case(8, 64, 32, 1);
  EXPECT_EQ(choose(c.packed, torch::kFloat64), Kernel::none);
  // 96 columns are not whole 64-column blocks: bf16 activations take the fp32 kernel, if any.
  const auto odd = make_case(8, 96, 32, 1);
  EXPECT_NE(choose(odd.packed, torch::kBFloat16), Kernel::bf16_pairs);
  // 48 columns are not whole 32-column chunks.
  const auto narrow = make_case(8, 48, 16, 1);
  EXPECT_EQ(choose(narrow.packed, torch::kFloat32), Kernel::none);
}

TEST(W4A16Direct, EachAvailableKernelEqualsTheExactProduct) {
  torch::NoGradGuard no_grad;
  int kernels_run = 0;
  for (const auto& [O, I, group] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {1, 64, 32}, {70, 320, 32}, {131, 384, 64}, {66, 512, 128}, {9, 96, 32}}) {
    const auto c = make_case(O, I, group, 7);
    auto fp32_scales = c.packed;
    fp32_scales.scales_OG = c.packed.scales_OG.to(torch::kFloat32);
    for (const auto& weight : {c.packed, fp32_scales}) {
      for (const int64_t N : {1, 2, 3, 5, 8, 13, 16, 37}) {
        for (const auto dtype : {torch::kBFloat16, torch::kFloat32}) {
          const Kernel kernel = choose(weight, dtype);
          if (kernel == Kernel::none) continue;
          ++kernels_run;
          const auto x = torch::randn({N, I}).to(dtype);
          const auto exact = x.to(torch::kFloat64).matmul(c.dequantized_OI.to(torch::kFloat64).t());
          const auto y = linear(x, weight, kernel);
          ASSERT_EQ(y.sizes(), torch::IntArrayRef({N, O}));
          EXPECT_LT(relative_error(y, exact), 2e-6)
              << O << "x" << I << " group " << group << " N=" << N << " x " << dtype << " scales "
              << weight.scales_OG.scalar_type() << " kernel " << static_cast<int>(kernel);
        }
      }
    }
  }
  if (kernels_run == 0) GTEST_SKIP() << "this CPU has no AVX-512: no direct kernel applies";
}

}  // namespace
}  // namespace k2f::quant::direct
