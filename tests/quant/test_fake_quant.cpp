// quant/fake_quant.cpp: the forward equals dequantize(unpack(pack(quantize(w)))) bit for bit on
// both grids (so QAT trains exactly the exported INT4 model), and the straight-through gradient
// equals the upstream gradient exactly; the CPU's fused pass (contiguous fp32) equals the
// whole-tensor path (taken by a strided view of the same values) bit for bit, ties, subnormals,
// zero and non-finite groups included.
#include <gtest/gtest.h>

#include <limits>

#include "quant/fake_quant.h"
#include "quant/int4_pack.h"
#include "test_util.h"

namespace k2f::quant {
namespace {

// The raw bits of an fp32 tensor, so that -0.0 and +0.0 (and any NaN) are told apart.
torch::Tensor fp32_bits(const torch::Tensor& t) { return t.to(torch::kFloat32).contiguous().view(torch::kInt32); }

torch::Tensor fake_quant_test_weight() {
  torch::manual_seed(23);  // Debian's LibTorch seeds its default generator randomly
  auto w = torch::randn({16, 128}) * 0.05;
  w.narrow(1, 32, 32).zero_();                       // an all-zero group
  w[3][5] = -1e-6f;                                  // tiny negatives round to code 0: must give +0.0
  w.narrow(1, 96, 32).abs_().neg_();                 // an all-negative group
  return w;
}

TEST(FakeQuant, ForwardEqualsExportedInt4BitForBit) {
  const auto w = fake_quant_test_weight();
  for (const Grid grid : {Grid::k2, Grid::minmax}) {
    const QuantOptions options{32, grid};
    const auto q = quantize(w, options);
    const auto codes = unpack_int4(pack_int4(q.codes_OI), 128);
    ASSERT_TRUE(torch::equal(codes, q.codes_OI)) << grid_name(grid);
    const auto exported = dequantize(codes, q.scales_OG, 32);
    const auto fake = fake_quantize(w, options);
    EXPECT_EQ(fake.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::equal(fp32_bits(fake), fp32_bits(exported))) << grid_name(grid);
    EXPECT_EQ(fp32_bits(fake)[3][5].item<int32_t>(), 0) << "+0.0, not -0.0";
    EXPECT_FALSE(torch::equal(fake, w));  // it did quantise
    // On the k2 grid fake quantisation is idempotent: absmax 7s gives back the scale s. (minmax
    // is not: its absmax 7s would get the scale 7s/7.5.)
    if (grid == Grid::k2) {
      EXPECT_TRUE(torch::equal(fp32_bits(fake_quantize(fake, options)), fp32_bits(fake)));
    }
  }
}

TEST(FakeQuant, FusedCpuPassEqualsTheWholeTensorPathBitForBit) {
  torch::manual_seed(29);
  // Magnitudes from subnormal to large, exact ties at code +-0.5 steps, and special groups.
  auto w = torch::randn({64, 256}) * torch::pow(10.0, torch::randint(-40, 4, {64, 256}).to(torch::kFloat32) / 4);
  w[0].narrow(0, 0, 32).copy_(torch::arange(-16, 16).to(torch::kFloat32) * 0.5);  // halves: ties to even
  w[1].narrow(0, 0, 32).fill_(1e-40f);                                             // a subnormal group
  w[2].narrow(0, 0, 32).zero_();
  w[3][7] = std::numeric_limits<float>::quiet_NaN();
  w[4][9] = std::numeric_limits<float>::infinity();
  w[5][40] = -1e-30f;
  for (const Grid grid : {Grid::k2, Grid::minmax}) {
    for (const int64_t group : {32, 64, 128}) {
      const QuantOptions options{group, grid};
      const auto strided = w.t().contiguous().t();  // the same values, not contiguous: whole-tensor path
      ASSERT_FALSE(strided.is_contiguous());
      const auto fused = fake_quantize(w, options), whole = fake_quantize(strided, options);
      // Bit for bit, except that a NaN's sign and payload are not compared.
      const auto fused_bits = torch::where(torch::isnan(fused), torch::full_like(fp32_bits(fused), 0x7fc00000),
                                           fp32_bits(fused));
      const auto whole_bits = torch::where(torch::isnan(whole), torch::full_like(fp32_bits(whole), 0x7fc00000),
                                           fp32_bits(whole));
      EXPECT_TRUE(torch::equal(fused_bits, whole_bits)) << grid_name(grid) << " group " << group;
      EXPECT_TRUE(torch::isnan(fused[3].narrow(0, 0, group)).all().item<bool>());
      // Written in bf16 directly: the fp32 result rounded once, as .to(kBFloat16) rounds it.
      const auto fused16 = fake_quantize(w, options, torch::kBFloat16);
      EXPECT_EQ(fused16.scalar_type(), torch::kBFloat16);
      const auto whole16 = fake_quantize(strided, options, torch::kBFloat16);
      EXPECT_TRUE(torch::equal(torch::nan_to_num(fused16), torch::nan_to_num(fused.to(torch::kBFloat16))));
      EXPECT_TRUE(torch::equal(torch::nan_to_num(whole16), torch::nan_to_num(fused.to(torch::kBFloat16))));
    }
  }
}

TEST(FakeQuant, Bf16OutputStillGivesTheMasterItsFp32Gradient) {
  const auto master = fake_quant_test_weight().requires_grad_(true);
  const auto upstream = torch::randn({16, 128}).to(torch::kBFloat16);
  fake_quantize(master, {}, torch::kBFloat16).backward(upstream);
  ASSERT_TRUE(master.grad().defined());
  EXPECT_EQ(master.grad().scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(master.grad(), upstream.to(torch::kFloat32)));
}

TEST(FakeQuant, KeepsTheWeightDtype) {
  const auto w = fake_quant_test_weight().to(torch::kBFloat16);
  const auto fake = fake_quantize(w, {});
  EXPECT_EQ(fake.scalar_type(), torch::kBFloat16);
  const auto q = quantize(w, {});
  EXPECT_TRUE(torch::equal(fake, dequantize(q.codes_OI, q.scales_OG, 32).to(torch::kBFloat16)));
}

TEST(FakeQuant, StraightThroughGradientIsTheUpstreamGradient) {
  const auto master = fake_quant_test_weight().requires_grad_(true);
  for (const Grid grid : {Grid::k2, Grid::minmax}) {
    master.mutable_grad() = torch::Tensor();
    const auto upstream = torch::randn({16, 128});
    fake_quantize(master, {32, grid}).backward(upstream);
    ASSERT_TRUE(master.grad().defined());
    EXPECT_EQ(master.grad().scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::equal(fp32_bits(master.grad()), fp32_bits(upstream))) << grid_name(grid);
  }
  // Inside a computation the master weight gets exactly the gradient a plain leaf holding the
  // fake-quantised values would get.
  master.mutable_grad() = torch::Tensor();
  const auto x = torch::randn({5, 128});
  const auto c = torch::randn({5, 16});
  (torch::matmul(x, fake_quantize(master, {}).t()) * c).sum().backward();
  const auto plain = fake_quantize(master, {}).detach().requires_grad_(true);
  (torch::matmul(x, plain.t()) * c).sum().backward();
  EXPECT_TRUE(torch::equal(fp32_bits(master.grad()), fp32_bits(plain.grad())));
}

TEST(FakeQuant, GroupSizeMustDivideInFeatures) {
  k2f::testing::expect_error([] { fake_quantize(torch::zeros({4, 40}), {32, Grid::k2}); },
                             {"group_size (32)", "in_features (40)"});
}

}  // namespace
}  // namespace k2f::quant
