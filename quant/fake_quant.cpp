// The INT4 fake-quantisation autograd function (see fake_quant.h). Forward shares its arithmetic
// with quantize()/dequantize(), so QAT and export cannot drift apart. On the CPU, contiguous fp32
// master weights take one fused pass per group instead of LibTorch's eight whole-tensor passes
// (QAT's step overhead on bench_moe was ~14% with them); the fused pass performs the same IEEE
// operations in the same order, so its result is equal bit for bit (tested against the other path).
#include "quant/fake_quant.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace k2f::quant {
namespace {

// dequantize(quantize_groups(...)) for one group of n fp32 values.
void fake_quantize_group(const float* w, float* out, int64_t n, float max_code, float low_code) {
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
  for (int64_t i = 0; i < n; ++i) {
    // nearbyint rounds half to even like torch::round; the comparisons keep NaN as clamp_ does;
    // + 0.0F turns -0 into +0.
    float code = std::nearbyint(w[i] / divisor);
    code = code < low_code ? low_code : code;
    code = code > 7.0F ? 7.0F : code;
    out[i] = (code + 0.0F) * scale;
  }
}

bool fused_path_applies(const torch::Tensor& w_OI) {
  return w_OI.device().is_cpu() && w_OI.scalar_type() == torch::kFloat32 && w_OI.is_contiguous();
}

torch::Tensor fake_quantize_fused(const torch::Tensor& w_OI, const QuantOptions& options) {
  auto out = torch::empty_like(w_OI);
  const int64_t group = options.group_size, groups = w_OI.numel() / group;
  const float max_code = detail::grid_max_code(options.grid), low_code = detail::grid_low_code(options.grid);
  const float* w = w_OI.data_ptr<float>();
  float* o = out.data_ptr<float>();
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
  static torch::Tensor forward(torch::autograd::AutogradContext* /*ctx*/, const torch::Tensor& w_OI,
                               int64_t group_size, int64_t grid) {
    const QuantOptions options{group_size, static_cast<Grid>(grid)};
    detail::check_quantizable(w_OI, options);
    return fused_path_applies(w_OI) ? fake_quantize_fused(w_OI, options) : fake_quantize_whole_tensor(w_OI, options);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* /*ctx*/,
                                                 torch::autograd::variable_list grad_outputs) {
    // Straight-through: d(fake_quant(w))/dw is taken as the identity.
    return {grad_outputs[0], torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor fake_quantize(const torch::Tensor& w_OI, const QuantOptions& options) {
  return FakeQuantInt4::apply(w_OI, options.group_size, static_cast<int64_t>(options.grid));
}

}  // namespace k2f::quant
