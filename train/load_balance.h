// Aux-loss-free load balancing (DeepSeek-V3 / K2): after each step every MoE layer's router
// correction bias moves by `rate` towards balance, bias_e += rate * sign(mean_load - load_e),
// from the expert loads of the whole step (all micro-batches; under expert/data parallelism the
// loads are summed over ranks first, so every replica applies the same update).
#pragma once

#include <vector>

#include "model/kimi_model.h"

namespace k2f::train {

// Running per-layer expert loads of one optimizer step.
class ExpertLoadTracker {
 public:
  explicit ExpertLoadTracker(const model::KimiModel& model);
  void reset();
  void accumulate(const model::KimiModel& model);  // after each micro-batch forward
  std::vector<torch::Tensor>& loads() { return loads_E_; }  // one int64 [E] per MoE layer
  // max/mean load per MoE layer (1.0 = perfectly balanced).
  std::vector<double> imbalance() const;

 private:
  std::vector<torch::Tensor> loads_E_;
};

void update_router_biases(model::KimiModel& model, const std::vector<torch::Tensor>& loads_E, double rate);

}  // namespace k2f::train
