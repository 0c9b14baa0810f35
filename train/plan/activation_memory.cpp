// One line per saved tensor, in forward order. a: activation bytes (bf16 2, fp32 4); f: fp32 (4)
// for what the code always widens (RMSNorm internals, RoPE, softmax, routing weights, expert
// combine); i: int64 (8) for indices. Letters follow the legend of model/attention.cpp.
#include "train/plan/activation_memory.h"

namespace k2f::train::plan {
namespace {

constexpr double f = 4, i = 8;

// RMSNorm of width n: its fp32 input copy (the input itself under fp32), the normalised fp32
// tensor the weight multiplies, and the output the next matmul saves.
double rms_norm(double n, double a) { return f * n + f * n + a * n; }

// down(silu(gate(x)) * up(x)) of width n: gate output (silu), silu output and up output (the
// product), product (down). The input x is counted by whoever produced it.
double swiglu(double n, double a) { return 4 * a * n; }

double attention(const model::ModelConfig& c, double a, double S) {
  const double H = static_cast<double>(c.num_attention_heads), Q = static_cast<double>(c.q_head_dim());
  const double R = static_cast<double>(c.qk_rope_head_dim), V = static_cast<double>(c.v_head_dim);
  const double L = static_cast<double>(c.kv_lora_rank);
  double bytes = 0;
  if (c.q_lora_rank) bytes += rms_norm(static_cast<double>(*c.q_lora_rank), a);  // q_a_layernorm
  bytes += 2 * f * H * R;          // RoPE of q_pe: fp32 x and rotate_half(x)
  bytes += rms_norm(L, a);         // kv_a_layernorm on the latent
  bytes += 2 * f * R;              // RoPE of the shared k_pe
  bytes += 2 * a * H * Q;          // contiguous copies of Q and K^T for the score matmul
  bytes += S;                      // the [T,S] causal mask's negation (bool) masked_fill keeps
  bytes += f * H * S;              // softmax probabilities (fp32)
  if (a != f) bytes += a * H * S;  // ... cast back to the compute dtype for P @ V
  bytes += a * H * V;              // contiguous copy of V for P @ V
  bytes += a * H * V;              // heads concatenated, o_proj's input
  return bytes;
}

double moe(const model::ModelConfig& c, double a) {
  const double D = static_cast<double>(c.hidden_size), E = static_cast<double>(c.n_routed_experts);
  const double K = static_cast<double>(c.num_experts_per_tok), I = static_cast<double>(c.moe_intermediate_size);
  double bytes = 0;
  if (a != f) bytes += f * D;  // router input widened to fp32
  bytes += f * E;              // sigmoid scores
  bytes += i * K + 2 * f * K;  // top-k indices, unnormalised weights and their sum-divided form
  bytes += 2 * i * K;          // expert order and token-of-pair indices (index_select / index_add)
  bytes += f * K;              // weights in expert order
  bytes += a * K * D;          // tokens gathered in expert order, the experts' input
  bytes += K * swiglu(I, a);   // each routed expert's SwiGLU
  bytes += f * K * D;          // expert outputs widened to fp32 for the weighted combine
  bytes += f * K * D;          // ... times their weights: index_add keeps this source for its backward
  bytes += swiglu(I * static_cast<double>(c.n_shared_experts), a);
  return bytes;
}

}  // namespace

double layer_activation_bytes(const model::ModelConfig& c, int64_t layer, const ActivationShape& shape) {
  const double a = static_cast<double>(shape.activation_bytes), D = static_cast<double>(c.hidden_size);
  const double mlp = c.is_moe_layer(layer) ? moe(c, a) : swiglu(static_cast<double>(c.intermediate_size), a);
  return 2 * rms_norm(D, a) + attention(c, a, static_cast<double>(shape.seq_len)) + mlp;
}

double recomputed_layer_activation_bytes(const model::ModelConfig& c, const ActivationShape& shape) {
  return static_cast<double>(shape.activation_bytes) * static_cast<double>(c.hidden_size);
}

double sequence_context_bytes(const model::ModelConfig& c, const ActivationShape&) {
  return 2 * f * static_cast<double>(c.qk_rope_head_dim) + i;  // cos and sin tables, token ids
}

double head_activation_bytes(const model::ModelConfig& c, const ActivationShape& shape) {
  const double a = static_cast<double>(shape.activation_bytes);
  return rms_norm(static_cast<double>(c.hidden_size), a) + f * static_cast<double>(c.vocab_size) + i;
}

double logits_bytes(const model::ModelConfig& c, const ActivationShape& shape) {
  const double a = static_cast<double>(shape.activation_bytes), V = static_cast<double>(c.vocab_size);
  return a == f ? f * V : (a + f) * V;
}

}  // namespace k2f::train::plan
