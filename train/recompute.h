// Activation recomputation per decoder layer, applied to the model from outside through its
// LayerRunner hook: the forward runs without recording the layer's intermediates and keeps only
// its input; the backward re-runs the layer with gradients on and backpropagates through it
// (the reentrant scheme). Memory per layer drops to one [B,T,D] input; compute rises by a forward.
#pragma once

#include "model/kimi_model.h"

namespace k2f::train {

model::LayerRunner recomputing_layer_runner();

}  // namespace k2f::train
