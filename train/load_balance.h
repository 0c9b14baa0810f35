// Aux-loss-free load balancing (DeepSeek-V3 / K2): after each step every MoE layer's router
// correction bias moves by `rate` towards balance, bias_e += rate * sign(mean_load - load_e),
// from the expert loads of the whole step (all micro-batches; under expert/data parallelism the
// loads are summed over ranks first, so every replica applies the same update).
#pragma once

#include <limits>
#include <utility>
#include <vector>

#include "model/kimi_model.h"

namespace k2f::train {

// Running per-layer expert loads of one optimizer step.
class ExpertLoadTracker {
 public:
  explicit ExpertLoadTracker(const model::KimiModel& model);
  void reset();
  // After each forward through the model's layers with index in [first_layer, end_layer).
  void accumulate(const model::KimiModel& model, int64_t first_layer = 0,
                  int64_t end_layer = std::numeric_limits<int64_t>::max());
  std::vector<torch::Tensor>& loads() { return loads_E_; }  // one int64 [E] per MoE layer held
  // max/mean load per MoE layer held (1.0 = perfectly balanced), with the layer's index.
  std::vector<std::pair<int64_t, double>> imbalance() const;

 private:
  std::vector<int64_t> layer_indices_;
  std::vector<torch::Tensor> loads_E_;
};

void update_router_biases(model::KimiModel& model, const std::vector<torch::Tensor>& loads_E, double rate);

}  // namespace k2f::train
