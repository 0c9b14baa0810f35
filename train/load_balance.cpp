#include "train/load_balance.h"

namespace k2f::train {
namespace {
std::vector<model::MoE> moe_layers(const model::KimiModel& model) {
  std::vector<model::MoE> layers;
  for (const auto& layer : model->decoder_layers)
    if (layer->moe) layers.push_back(layer->moe);
  return layers;
}
}  // namespace

ExpertLoadTracker::ExpertLoadTracker(const model::KimiModel& model) {
  for (const auto& layer : model->decoder_layers) {
    if (!layer->moe) continue;
    layer_indices_.push_back(layer->layer_index);
    loads_E_.push_back(torch::Tensor());
  }
}

void ExpertLoadTracker::reset() {
  for (auto& load : loads_E_) load = torch::Tensor();
}

void ExpertLoadTracker::accumulate(const model::KimiModel& model, int64_t first_layer, int64_t end_layer) {
  const auto layers = moe_layers(model);
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layer_indices_[i] < first_layer || layer_indices_[i] >= end_layer) continue;
    const auto& load = layers[i]->last_expert_load_E;
    loads_E_[i] = loads_E_[i].defined() ? loads_E_[i] + load : load.clone();
  }
}

std::vector<std::pair<int64_t, double>> ExpertLoadTracker::imbalance() const {
  std::vector<std::pair<int64_t, double>> values;
  for (size_t i = 0; i < loads_E_.size(); ++i) {
    const auto& load = loads_E_[i];
    if (!load.defined()) continue;
    const auto as_double = load.to(torch::kFloat64);
    const double mean = as_double.mean().item<double>();
    values.emplace_back(layer_indices_[i], mean > 0 ? as_double.max().item<double>() / mean : 1.0);
  }
  return values;
}

void update_router_biases(model::KimiModel& model, const std::vector<torch::Tensor>& loads_E, double rate) {
  if (rate <= 0) return;
  torch::NoGradGuard no_grad;
  const auto layers = moe_layers(model);
  for (size_t i = 0; i < layers.size(); ++i) {
    if (!loads_E[i].defined()) continue;
    const auto load = loads_E[i].to(torch::kFloat32);
    auto& bias = layers[i]->gate->e_score_correction_bias;
    bias.add_(torch::sign(load.mean() - load).to(bias.device()), rate);
  }
}

}  // namespace k2f::train
