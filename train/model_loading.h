// Opening a model for inference or export from either kind of directory a user has: an HF
// directory (config.json + safetensors) or a k2forge training checkpoint (meta.json with the
// model config + model-rank00000.safetensors, written by a single-process run or gathered).
#pragma once

#include <string>

#include "model/kimi_model.h"

namespace k2f::train {

bool is_training_checkpoint(const std::string& dir);

// The model with its weights, from an HF directory or a training checkpoint directory.
model::KimiForCausalLM load_model(const std::string& dir);

}  // namespace k2f::train
