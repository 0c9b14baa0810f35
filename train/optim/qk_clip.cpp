#include "train/optim/qk_clip.h"

#include <cmath>

namespace k2f::train {

void begin_qk_recording(model::KimiModel& model) {
  for (auto& layer : model->decoder_layers) {
    layer->self_attn->record_max_logits = true;
    layer->self_attn->max_logits_H = torch::Tensor();
  }
}

QkClipReport apply_qk_clip(model::KimiModel& model, double tau) {
  torch::NoGradGuard no_grad;
  const auto& c = model->config;
  const int64_t H = c.num_attention_heads, dn = c.qk_nope_head_dim, dr = c.qk_rope_head_dim, dv = c.v_head_dim;
  QkClipReport report;
  for (auto& layer : model->decoder_layers) {
    auto& attention = layer->self_attn;
    if (!attention->max_logits_H.defined()) continue;
    const auto max_H = attention->max_logits_H.to(torch::kFloat64).cpu();
    report.max_logit = std::max(report.max_logit, max_H.max().item<double>());
    if (tau <= 0) continue;
    const auto over_H = max_H > tau;
    const int64_t clipped = over_H.sum().item<int64_t>();
    if (clipped == 0) continue;
    report.heads_clipped += clipped;
    const auto gamma_H = torch::where(over_H, tau / max_H, torch::ones_like(max_H));
    const auto device = attention->o_proj->weight.device();
    const auto gamma = gamma_H.to(device, torch::kFloat32).view({H, 1, 1});
    const auto root = gamma.sqrt();
    auto& q_weight = attention->q_proj ? attention->q_proj->weight : attention->q_b_proj->weight;
    auto q_HXI = q_weight.view({H, dn + dr, q_weight.size(1)});
    q_HXI.narrow(1, 0, dn).mul_(root);
    q_HXI.narrow(1, dn, dr).mul_(gamma);
    auto kv_HXI = attention->kv_b_proj->weight.view({H, dn + dv, attention->kv_b_proj->weight.size(1)});
    kv_HXI.narrow(1, 0, dn).mul_(root);
  }
  return report;
}

}  // namespace k2f::train
