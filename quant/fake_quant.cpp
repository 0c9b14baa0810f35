// The INT4 fake-quantisation autograd function (see fake_quant.h). Forward shares its arithmetic
// with quantize()/dequantize(), so QAT and export cannot drift apart. On the CPU, contiguous fp32
// master weights take one fused pass per group, written straight in the compute dtype, instead of
// LibTorch's eight whole-tensor passes and an fp32 copy (QAT's step overhead on bench_moe was ~14%
// with them); the fused pass performs the same IEEE operations in the same order, so its result is
// equal bit for bit (tested against the other path).
#include "quant/fake_quant.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace k2f::quant {
namespace {

// dequantize(quantize_groups(...)) for one group of n fp32 values, written as Out (fp32, or bf16
// rounded to nearest even as .to(kBFloat16) rounds).
template <typename Out>
void fake_quantize_group(const float* w, Out* out, int64_t n, float max_code, float low_code) {
  float absmax = 0.0F;
  bool any_nan = false;
  for (int64_t i = 0; i < n; ++i) {
    absmax = std::max(absmax, std::fabs(w[i]));
    any_nan |= std::isnan(w[i]);
  }
  // amax propagates NaN; the scale is rounded to bf16 (to nearest even) before any use.
  const float scale =
      any_nan ? std::numeric_limits<float>::quiet_NaN() : static_cast<float>(c10::BFloat16(absmax / max_code));
  const float divisor = scale == 0.0F ? 1.0F : scale;
  // Adding and subtracting 1.5 * 2^23 rounds to an integer, half to even like torch::round, for
  // |v| < 2^22 (here |v| <= 7.5 or NaN), without a libm call per value, so the loop vectorises.
  const float round_bias = 12582912.0F;
  for (int64_t i = 0; i < n; ++i) {
    // The comparisons keep NaN as clamp_ does; + 0.0F turns -0 into +0.
    float code = (w[i] / divisor + round_bias) - round_bias;
    code = code < low_code ? low_code : code;
    code = code > 7.0F ? 7.0F : code;
    out[i] = static_cast<Out>((code + 0.0F) * scale);
  }
}

bool fused_path_applies(const torch::Tensor& w_OI, torch::ScalarType out_dtype) {
  return w_OI.device().is_cpu() && w_OI.scalar_type() == torch::kFloat32 && w_OI.is_contiguous() &&
         (out_dtype == torch::kFloat32 || out_dtype == torch::kBFloat16);
}

template <typename Out>
torch::Tensor fake_quantize_fused(const torch::Tensor& w_OI, const QuantOptions& options, torch::ScalarType out_dtype) {
  auto out = torch::empty(w_OI.sizes(), w_OI.options().dtype(out_dtype));
  const int64_t group = options.group_size, groups = w_OI.numel() / group;
  const float max_code = detail::grid_max_code(options.grid), low_code = detail::grid_low_code(options.grid);
  const float* w = w_OI.data_ptr<float>();
  Out* o = reinterpret_cast<Out*>(out.data_ptr());
  at::parallel_for(0, groups, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t g = begin; g < end; ++g) fake_quantize_group(w + g * group, o + g * group, group, max_code, low_code);
  });
  return out;
}

// The device-generic path (CUDA, other dtypes, strided weights).
torch::Tensor fake_quantize_whole_tensor(const torch::Tensor& w_OI, const QuantOptions& options) {
  const auto groups = detail::quantize_groups(w_OI, options);
  const auto dequant_OGg = groups.codes_OGg * groups.scales_OG.to(torch::kFloat32).unsqueeze(-1);
  return dequant_OGg.reshape(w_OI.sizes()).to(w_OI.scalar_type());
}

class FakeQuantInt4 : public torch::autograd::Function<FakeQuantInt4> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& w_OI, int64_t group_size,
                               int64_t grid, int64_t out_dtype_code) {
    const QuantOptions options{group_size, static_cast<Grid>(grid)};
    const auto out_dtype = static_cast<torch::ScalarType>(out_dtype_code);
    detail::check_quantizable(w_OI, options);
    ctx->saved_data["weight_dtype"] = static_cast<int64_t>(w_OI.scalar_type());
    if (fused_path_applies(w_OI, out_dtype)) {
      return out_dtype == torch::kBFloat16 ? fake_quantize_fused<c10::BFloat16>(w_OI, options, out_dtype)
                                           : fake_quantize_fused<float>(w_OI, options, out_dtype);
    }
    return fake_quantize_whole_tensor(w_OI, options).to(out_dtype);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    // Straight-through: d(fake_quant(w))/dw is taken as the identity, in the weight's dtype.
    const auto weight_dtype = static_cast<torch::ScalarType>(ctx->saved_data["weight_dtype"].toInt());
    return {grad_outputs[0].to(weight_dtype), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor fake_quantize(const torch::Tensor& w_OI, const QuantOptions& options,
                            std::optional<torch::ScalarType> out_dtype) {
  return FakeQuantInt4::apply(w_OI, options.group_size, static_cast<int64_t>(options.grid),
                              static_cast<int64_t>(out_dtype.value_or(w_OI.scalar_type())));
}

}  // namespace k2f::quant
