// Symmetric INT4 group quantisation (see int4_quantizer.h): absmax per group, bf16-rounded
// scale, round-half-to-even codes clamped to the grid. Everything is whole-tensor ops.
#include "quant/int4_quantizer.h"

#include "base/error.h"

namespace k2f::quant {

Grid parse_grid(const std::string& name) {
  if (name == "k2") return Grid::k2;
  if (name == "minmax") return Grid::minmax;
  fail("unknown INT4 grid \"", name, "\": expected \"k2\" or \"minmax\"");
}

const char* grid_name(Grid grid) { return grid == Grid::k2 ? "k2" : "minmax"; }

namespace detail {

void check_quantizable(const torch::Tensor& w_OI, const QuantOptions& options) {
  check(w_OI.dim() == 2, "INT4 quantisation expects a 2-D weight [out, in], got ", w_OI.dim(), " dims");
  check(torch::isFloatingType(w_OI.scalar_type()), "INT4 quantisation expects a floating weight, got ",
        w_OI.scalar_type());
  check(options.group_size > 0, "INT4 group_size must be positive, got ", options.group_size);
  check(w_OI.size(1) % options.group_size == 0, "INT4 group_size (", options.group_size,
        ") must divide in_features (", w_OI.size(1), ")");
}

float grid_max_code(Grid grid) { return grid == Grid::k2 ? 7.0F : 7.5F; }
float grid_low_code(Grid grid) { return grid == Grid::k2 ? -7.0F : -8.0F; }

GroupCodes quantize_groups(const torch::Tensor& w_OI, const QuantOptions& options) {
  check_quantizable(w_OI, options);
  const int64_t group = options.group_size;
  const int64_t O = w_OI.size(0);
  const int64_t I = w_OI.size(1);
  const double max_code = grid_max_code(options.grid);
  const double low = grid_low_code(options.grid);

  const auto w_OGg = w_OI.to(torch::kFloat32).reshape({O, I / group, group});
  const auto absmax_OG = w_OGg.abs().amax(-1);
  const auto scales_OG = (absmax_OG / max_code).to(torch::kBFloat16);
  const auto scale_OG1 = scales_OG.to(torch::kFloat32).unsqueeze(-1);
  // A zero scale (all-zero group, or one so small the scale underflows) divides by one instead:
  // its values round to code 0, never NaN.
  const auto safe_OG1 = torch::where(scale_OG1 == 0, torch::ones_like(scale_OG1), scale_OG1);
  auto codes_OGg = torch::round(w_OGg / safe_OG1).clamp_(low, 7.0);
  // -0.0 + 0.0 = +0.0: a negative value rounding to code 0 must dequantise to +0 exactly as the
  // int8 code 0 does, so fake quantisation and export agree bit for bit.
  codes_OGg.add_(0.0);
  return {codes_OGg, scales_OG};
}

}  // namespace detail

QuantizedWeight quantize(const torch::Tensor& w_OI, const QuantOptions& options) {
  auto groups = detail::quantize_groups(w_OI, options);
  check(torch::isfinite(w_OI).all().item<bool>(), "INT4 quantisation of a weight [", w_OI.size(0), ", ",
        w_OI.size(1), "] with non-finite values (NaN or inf)");
  return {groups.codes_OGg.reshape({w_OI.size(0), w_OI.size(1)}).to(torch::kInt8), groups.scales_OG};
}

torch::Tensor dequantize(const torch::Tensor& codes_OI, const torch::Tensor& scales_OG, int64_t group_size) {
  check(codes_OI.dim() == 2 && scales_OG.dim() == 2, "INT4 dequantisation expects 2-D codes and scales, got ",
        codes_OI.dim(), " and ", scales_OG.dim(), " dims");
  check(group_size > 0, "INT4 group_size must be positive, got ", group_size);
  const int64_t O = codes_OI.size(0);
  const int64_t I = codes_OI.size(1);
  check(I % group_size == 0, "INT4 group_size (", group_size, ") must divide in_features (", I, ")");
  check(scales_OG.size(0) == O && scales_OG.size(1) == I / group_size, "INT4 scales: expected [", O, ", ",
        I / group_size, "] for codes [", O, ", ", I, "] and group_size ", group_size, ", got [", scales_OG.size(0),
        ", ", scales_OG.size(1), "]");
  const auto codes_OGg = codes_OI.to(torch::kFloat32).reshape({O, I / group_size, group_size});
  return (codes_OGg * scales_OG.to(torch::kFloat32).unsqueeze(-1)).reshape({O, I});
}

}  // namespace k2f::quant
