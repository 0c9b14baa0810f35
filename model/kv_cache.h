// The MLA KV cache: per token and layer it keeps only what attention cannot recompute cheaply,
// the compressed latent after kv_a_layernorm (kv_lora_rank values) and the shared rope key after
// RoPE (qk_rope_head_dim values), instead of every head's keys and values (K2: 576 values, not
// 64*(192+128) = 20480). Buffers are preallocated for `max_len` slots (reserve() grows them).
// Rows of different prompt lengths are left-padded: row b's first starts[b] slots are padding,
// never attended to, and its positions count from its first real token. Each row also has its own
// length, so rows can hold sequences that grow independently (continuous batching: a row is
// emptied and refilled with another sequence while the others go on; row(b) feeds one row alone).
// Legend: B batch, S cached slots, T new tokens, L kv_lora_rank, R rope dim.
#pragma once

#include <utility>
#include <vector>

#include <torch/types.h>

#include "model/config.h"

namespace k2f::model {

class KvCache {
 public:
  // Zero-filled buffers [B, max_len, L] and [B, max_len, R] per layer in `dtype` (the compute dtype).
  KvCache(const ModelConfig& config, int64_t batch, int64_t max_len, torch::ScalarType dtype,
          torch::Device device = torch::kCPU);

  // Left padding (int64 [B], each in [0, max_len)); only while the cache is empty.
  void set_row_starts(const torch::Tensor& starts_B);
  // Back to empty, padding cleared; buffers kept.
  void reset();
  // Row b back to empty (no padding); the other rows keep what they hold.
  void reset_row(int64_t b);
  // Row b forgets every slot from `length` on (length <= its length).
  void truncate_row(int64_t b, int64_t length);
  // Grows the buffers to `max_len` slots (contents kept); never shrinks. Invalidates row views.
  void reserve(int64_t max_len);
  // Row b alone as a cache of batch 1 sharing this cache's buffers: a forward through it writes
  // row b's slots here and advances row b's length. Valid until reserve(); not for nesting.
  KvCache row(int64_t b);

  int64_t batch() const { return batch_; }
  int64_t max_len() const { return max_len_; }
  int64_t length() const;  // slots committed (padding included), the longest row's
  int64_t row_length(int64_t b) const;
  int64_t num_layers() const { return static_cast<int64_t>(latent_BSL_.size()); }
  torch::ScalarType dtype() const { return dtype_; }
  torch::Device device() const { return device_; }
  const torch::Tensor& row_starts() const { return starts_B_; }

  // Rope positions of the next T tokens: slot - row start, clamped at 0 inside the padding. [B,T]
  torch::Tensor next_positions(int64_t tokens) const;
  // Which keys the next T queries may see: bool [B, T, length+T], causal over slots (each row's
  // own), blind to padding (a padding query sees itself only, so its softmax stays finite) and to
  // the slots past a shorter row's end.
  torch::Tensor next_allowed(int64_t tokens) const;

  // Writes one layer's entries for the next T tokens of row b at slots [length_b, length_b+T) and
  // returns views of that layer's latent [B, length+T, L] and rope key [B, length+T, R]. Lengths
  // move only with advance(), after every layer has written.
  std::pair<torch::Tensor, torch::Tensor> append(int64_t layer, const torch::Tensor& latent_BTL,
                                                 const torch::Tensor& rope_key_BTR);
  void advance(int64_t tokens);

  // Throws unless T more tokens fit in every row ("KV cache: 3 new tokens after 510 would exceed
  // max_len 512").
  void check_room(int64_t tokens) const;

  int64_t values_per_token_per_layer() const { return kv_lora_rank_ + rope_dim_; }
  int64_t bytes_per_token_per_layer() const;
  // Total bytes of the preallocated buffers.
  int64_t allocated_bytes() const;

 private:
  std::vector<torch::Tensor> latent_BSL_;    // per layer [B, max_len, L]
  std::vector<torch::Tensor> rope_key_BSR_;  // per layer [B, max_len, R]
  torch::Tensor starts_B_;                   // int64 [B]
  std::vector<int64_t> lengths_;             // per row: slots committed (padding included)
  int64_t batch_, max_len_, kv_lora_rank_, rope_dim_;
  KvCache* parent_ = nullptr;                // a row view: the cache it is row parent_row_ of
  int64_t parent_row_ = -1;
  bool uniform() const;                      // every row has the same length
  torch::Tensor lengths_tensor() const;      // int64 [B] on the device
  torch::ScalarType dtype_;
  torch::Device device_;
};

// Values per token and layer a cache of full per-head keys and values would hold: H*(dn+dr) + H*dv.
int64_t full_kv_values_per_token_per_layer(const ModelConfig& config);

}  // namespace k2f::model
