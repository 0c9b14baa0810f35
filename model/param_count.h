// Parameter counts of a Kimi-K2 config by formula (no tensors allocated), so the 1T model can be
// counted on a laptop: total, active per token (only K of E routed experts), and a breakdown.
#pragma once

#include <cstdint>

#include "base/json_io.h"
#include "model/config.h"

namespace k2f::model {

struct ParameterCounts {
  int64_t embedding = 0;
  int64_t attention = 0;       // projections and their latent norms
  int64_t norms = 0;           // input/post-attention layernorms and the final norm
  int64_t dense_mlp = 0;
  int64_t routed_experts = 0;  // all experts of all MoE layers
  int64_t routed_experts_active = 0;
  int64_t shared_experts = 0;
  int64_t router = 0;          // gate weights and correction biases
  int64_t head = 0;
  int64_t total() const;
  int64_t active() const;  // per token: total minus the experts a token does not use
  Json to_json() const;
};

ParameterCounts count_parameters(const ModelConfig& config);

// Decoder layer `layer` alone: its two norms, attention, and dense MLP or MoE (router, routed and
// shared experts). count_parameters = embedding + head + final norm + the sum of these.
ParameterCounts layer_parameters(const ModelConfig& config, int64_t layer);

// Matmul FLOPs per token of a forward pass (a multiply-add counts 2): `weights` for the products
// with weight matrices a token uses (attention projections, its MLP or router + top-k routed +
// shared experts), `attention` for QK^T and PV when each query attends to `attended_keys` keys
// ((seq_len + 1) / 2 under a causal mask: the useful work; seq_len: the full square an
// implementation without causal skipping computes).
struct ForwardFlops {
  double weights = 0;
  double attention = 0;
  double total() const { return weights + attention; }
};
ForwardFlops layer_forward_flops(const ModelConfig& config, int64_t layer, double attended_keys);
// lm_head only (the embedding is a lookup).
double head_forward_flops(const ModelConfig& config);

// Forward FLOPs per token at context `seq_len`: 2 x (active matmul weights, lm_head included,
// embedding lookup excluded) + causal attention (QK^T and PV over (seq_len+1)/2 keys on average).
// Training (forward + backward) is 3x this.
double forward_flops_per_token(const ModelConfig& config, int64_t seq_len);

// Parameters of one MLA attention block (without the layer's input norm).
int64_t attention_parameters(const ModelConfig& config);

}  // namespace k2f::model
