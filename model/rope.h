// YaRN rotary position embedding as Kimi-K2 / DeepSeek-V3 compute it in HF: frequencies blended
// between interpolation and extrapolation by a linear ramp, cos/sin scaled by the YaRN mscale
// ratio, and the rope half of q/k de-interleaved ((2i, 2i+1) -> (i, i+d/2)) before rotate_half.
// Legend: B batch, T tokens, H heads, R rope dim (qk_rope_head_dim).
#pragma once

#include <torch/types.h>

#include "model/config.h"
#include "model/layers.h"

namespace k2f::model {

struct YarnRamp {
  double low = 0;   // first dimension pair that starts to interpolate
  double high = 0;  // first dimension pair fully interpolated
};

// The ramp bounds of YaRN for the config's rope scaling (K2: low 19, high 20).
YarnRamp yarn_ramp(const ModelConfig& config);

// inv_freq [R/2] in fp64 (plain RoPE when the config has no rope scaling).
torch::Tensor rope_inv_freq(const ModelConfig& config);

// The factor cos and sin are multiplied by: get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim).
double rope_cos_sin_scale(const ModelConfig& config);

struct RopeTables {
  torch::Tensor cos_BTR;  // fp32
  torch::Tensor sin_BTR;
};

// cos/sin for integer positions [B,T] (on the positions' device), emb = cat(freqs, freqs).
RopeTables rope_tables(const ModelConfig& config, const torch::Tensor& positions_BT);

// Rotates x [B,T,H,R] (H may be 1) with the HF de-interleave; result has x's dtype.
torch::Tensor apply_rope(const torch::Tensor& x_BTHR, const RopeTables& tables);

}  // namespace k2f::model
