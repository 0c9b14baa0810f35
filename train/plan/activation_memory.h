// Activation bytes a forward keeps for its backward, per token, as this codebase's model computes
// (model/attention.cpp, experts.cpp, layers.cpp): every tensor autograd saves, counted by shape
// and dtype. It is a model of the implementation, not of an ideal kernel: attention materialises
// its [H,T,T] probabilities (no fused attention), norms keep fp32 copies. The unit test checks it
// against the bytes a real CPU forward leaves allocated.
#pragma once

#include <cstdint>

#include "model/config.h"

namespace k2f::train::plan {

struct ActivationShape {
  int64_t seq_len = 0;          // keys each query sees (the full square is materialised)
  int64_t activation_bytes = 2;  // 2: bf16 compute, 4: fp32
};

// Decoder layer `layer`, no recomputation: bytes per token kept until its backward.
double layer_activation_bytes(const model::ModelConfig& config, int64_t layer, const ActivationShape& shape);
// Decoder layer under train.recompute: only its input [D] is kept; the rest is rebuilt in backward.
double recomputed_layer_activation_bytes(const model::ModelConfig& config, const ActivationShape& shape);
// Shared by every layer of a forward (rotary tables), per token.
double sequence_context_bytes(const model::ModelConfig& config, const ActivationShape& shape);
// Final norm, log-probabilities and targets of the loss, per token (kept on the last stage).
double head_activation_bytes(const model::ModelConfig& config, const ActivationShape& shape);
// Transient while the loss runs: the logits (and their fp32 copy under bf16), per token.
double logits_bytes(const model::ModelConfig& config, const ActivationShape& shape);

}  // namespace k2f::train::plan
