#include "model/rope.h"

#include <cmath>

namespace k2f::model {
namespace {

double get_mscale(double scale, double mscale) { return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

// The dimension index at which a rotation completes `rotations` turns over L0 positions.
double find_correction_dim(double rotations, double dim, double base, double original_max_positions) {
  return dim * std::log(original_max_positions / (rotations * 2.0 * M_PI)) / (2.0 * std::log(base));
}

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

}  // namespace

YarnRamp yarn_ramp(const ModelConfig& config) {
  const auto& s = config.rope_scaling.value();
  const double dim = static_cast<double>(config.qk_rope_head_dim);
  const double l0 = static_cast<double>(s.original_max_position_embeddings);
  YarnRamp ramp;
  ramp.low = std::max(std::floor(find_correction_dim(s.beta_fast, dim, config.rope_theta, l0)), 0.0);
  ramp.high = std::min(std::ceil(find_correction_dim(s.beta_slow, dim, config.rope_theta, l0)), dim - 1);
  if (ramp.low == ramp.high) ramp.high += 0.001;  // avoid a zero-width ramp
  return ramp;
}

torch::Tensor rope_inv_freq(const ModelConfig& config) {
  const int64_t dim = config.qk_rope_head_dim;
  const auto options = torch::TensorOptions().dtype(torch::kFloat64);
  const auto i = torch::arange(0, dim / 2, options);
  const auto extrapolation = torch::pow(config.rope_theta, -2.0 * i / static_cast<double>(dim));
  if (!config.rope_scaling) return extrapolation;
  const auto ramp_bounds = yarn_ramp(config);
  const auto ramp = ((i - ramp_bounds.low) / (ramp_bounds.high - ramp_bounds.low)).clamp(0.0, 1.0);
  const auto extrapolation_mask = 1.0 - ramp;
  const auto interpolation = extrapolation / config.rope_scaling->factor;
  return interpolation * (1.0 - extrapolation_mask) + extrapolation * extrapolation_mask;
}

double rope_cos_sin_scale(const ModelConfig& config) {
  if (!config.rope_scaling) return 1.0;
  const auto& s = *config.rope_scaling;
  return get_mscale(s.factor, s.mscale) / get_mscale(s.factor, s.mscale_all_dim);
}

RopeTables rope_tables(const ModelConfig& config, const torch::Tensor& positions_BT) {
  const auto inv_freq = rope_inv_freq(config).to(positions_BT.device());
  const auto freqs_BTh = positions_BT.to(torch::kFloat64).unsqueeze(-1) * inv_freq;
  const auto emb_BTR = torch::cat({freqs_BTh, freqs_BTh}, -1);
  const double scale = rope_cos_sin_scale(config);
  return {(emb_BTR.cos() * scale).to(torch::kFloat32), (emb_BTR.sin() * scale).to(torch::kFloat32)};
}

torch::Tensor apply_rope(const torch::Tensor& x_BTHR, const RopeTables& tables) {
  const auto sizes = x_BTHR.sizes();
  const int64_t rope_dim = sizes.back();
  // (2i, 2i+1) -> (i, i + R/2): view [..., R/2, 2], swap the last two axes, flatten.
  std::vector<int64_t> paired(sizes.begin(), sizes.end() - 1);
  paired.push_back(rope_dim / 2);
  paired.push_back(2);
  const auto deinterleaved = x_BTHR.reshape(paired).transpose(-1, -2).reshape(sizes);
  const auto wide = accumulate_dtype(x_BTHR.scalar_type());
  const auto x = deinterleaved.to(wide);
  const auto cos = tables.cos_BTR.to(wide).unsqueeze(2);
  const auto sin = tables.sin_BTR.to(wide).unsqueeze(2);
  return (x * cos + rotate_half(x) * sin).to(x_BTHR.scalar_type());
}

}  // namespace k2f::model
