#include "model/routing_replay.h"

#include "base/error.h"

namespace k2f::model {

namespace {

std::vector<MoE> moe_layers(const KimiModelImpl& model) {
  std::vector<MoE> out;
  for (const auto& layer : model.decoder_layers)
    if (layer->moe) out.push_back(layer->moe);
  return out;
}

}  // namespace

int64_t num_moe_layers(const KimiModelImpl& model) { return static_cast<int64_t>(moe_layers(model).size()); }

RoutingRecorder::RoutingRecorder(KimiModelImpl& model) : model_(model) {
  for (auto& moe : moe_layers(model_)) {
    kept_before_.push_back(moe->keep_expert_idx);
    moe->keep_expert_idx = true;
    moe->last_expert_idx_NK = torch::Tensor();  // nothing recorded yet
  }
}

RoutingRecorder::~RoutingRecorder() {
  auto layers = moe_layers(model_);
  for (size_t m = 0; m < layers.size(); ++m) {
    layers[m]->keep_expert_idx = kept_before_[m];
    if (!kept_before_[m]) layers[m]->last_expert_idx_NK = torch::Tensor();
  }
}

torch::Tensor RoutingRecorder::recorded() const {
  std::vector<torch::Tensor> per_layer;
  for (const auto& moe : moe_layers(model_)) {
    check(moe->last_expert_idx_NK.defined(), "routing recorder: no forward since recording began");
    per_layer.push_back(moe->last_expert_idx_NK.to(torch::kCPU, kExpertIdDtype));
  }
  check(!per_layer.empty(), "routing recorder: the model has no MoE layer");
  return torch::stack(per_layer, 1);
}

RoutingReplay::RoutingReplay(KimiModelImpl& model, const torch::Tensor& experts_NMK) : model_(model) {
  auto layers = moe_layers(model_);
  const int64_t M = static_cast<int64_t>(layers.size());
  const int64_t K = model_.config.num_experts_per_tok;
  check(experts_NMK.dim() == 3 && experts_NMK.size(1) == M && experts_NMK.size(2) == K,
        "routing replay: experts of shape ", experts_NMK.sizes(), " for a model of ", M, " MoE layers and ", K,
        " experts per token (expected [N, ", M, ", ", K, "])");
  for (int64_t m = 0; m < M; ++m) layers[static_cast<size_t>(m)]->gate->chosen_experts_NK = experts_NMK.select(1, m);
}

RoutingReplay::~RoutingReplay() {
  for (auto& moe : moe_layers(model_)) moe->gate->chosen_experts_NK = torch::Tensor();
}

}  // namespace k2f::model
