// Routing replay for MoE RL: the sampler records which experts every MoE layer chose for each
// token, and the trainer's forward over the same tokens is made to choose the same ones. The two
// passes compute the same math in different shapes (a cached decode of one token per row against
// a full forward of padded episodes), so their router inputs differ by rounding; where a token's
// k-th and (k+1)-th experts are within that rounding of each other (1 fp32 ulp was seen), the
// passes pick different experts and the trainer's log-prob of the sampled token differs from the
// sampler's by 1e-3 and more. Replayed, only rounding separates them. The routers' weights still
// come from the trainer's own scores at the replayed experts, so the router keeps learning.
// Applied from outside the model through each MoE layer's kept expert ids and its router's chosen
// experts. Legend: N tokens of one forward (row-major over [B, T]), M MoE layers, K experts per token.
#pragma once

#include <torch/types.h>

#include "model/kimi_model.h"

namespace k2f::model {

// Dtype of recorded expert ids (384 experts fit; half the bytes of int32).
constexpr torch::ScalarType kExpertIdDtype = torch::kInt16;

// The MoE layers this model holds (M).
int64_t num_moe_layers(const KimiModelImpl& model);

// While alive, every MoE layer keeps its chosen experts, and recorded() returns those of the last
// forward. Restores the layers' previous setting when destroyed.
class RoutingRecorder {
 public:
  explicit RoutingRecorder(KimiModelImpl& model);
  ~RoutingRecorder();
  RoutingRecorder(const RoutingRecorder&) = delete;
  RoutingRecorder& operator=(const RoutingRecorder&) = delete;
  // kExpertIdDtype [N, M, K] on the CPU.
  torch::Tensor recorded() const;

 private:
  KimiModelImpl& model_;
  std::vector<bool> kept_before_;
};

// While alive, every forward of `model` (and any recomputation in a backward pass) routes token n
// of MoE layer m to experts_NMK[n][m]; rows holding a negative id choose freely. Throws when
// experts_NMK is not [N, M, K] for this model; a forward of another N throws in the router.
class RoutingReplay {
 public:
  RoutingReplay(KimiModelImpl& model, const torch::Tensor& experts_NMK);
  ~RoutingReplay();
  RoutingReplay(const RoutingReplay&) = delete;
  RoutingReplay& operator=(const RoutingReplay&) = delete;

 private:
  KimiModelImpl& model_;
};

}  // namespace k2f::model
