#include "model/kv_cache.h"

#include "base/error.h"

namespace k2f::model {

KvCache::KvCache(const ModelConfig& c, int64_t batch, int64_t max_len, torch::ScalarType dtype, torch::Device device)
    : batch_(batch),
      max_len_(max_len),
      kv_lora_rank_(c.kv_lora_rank),
      rope_dim_(c.qk_rope_head_dim),
      dtype_(dtype),
      device_(device) {
  check(batch > 0, "KV cache: batch (", batch, ") must be positive");
  check(max_len > 0, "KV cache: max_len (", max_len, ") must be positive");
  const auto options = torch::TensorOptions().dtype(dtype).device(device);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    latent_BSL_.push_back(torch::zeros({batch, max_len, kv_lora_rank_}, options));
    rope_key_BSR_.push_back(torch::zeros({batch, max_len, rope_dim_}, options));
  }
  starts_B_ = torch::zeros({batch}, torch::TensorOptions().dtype(torch::kInt64).device(device));
}

void KvCache::set_row_starts(const torch::Tensor& starts_B) {
  check(length_ == 0, "KV cache: row starts can only be set while the cache is empty (length ", length_, ")");
  check(starts_B.dim() == 1 && starts_B.size(0) == batch_, "KV cache: expected row starts [", batch_, "], got ",
        starts_B.sizes());
  const auto starts = starts_B.to(torch::kInt64).cpu().clone();  // never aliases the caller's tensor
  check(starts.min().item<int64_t>() >= 0 && starts.max().item<int64_t>() < max_len_,
        "KV cache: row starts must lie in [0, max_len ", max_len_, "), got ", starts.min().item<int64_t>(), "..",
        starts.max().item<int64_t>());
  starts_B_ = starts.to(device_);
}

void KvCache::reset() {
  length_ = 0;
  starts_B_.zero_();
}

void KvCache::check_room(int64_t tokens) const {
  check(tokens > 0, "KV cache: expected at least one new token, got ", tokens);
  check(length_ + tokens <= max_len_, "KV cache: ", tokens, " new tokens after ", length_, " would exceed max_len ",
        max_len_);
}

torch::Tensor KvCache::next_positions(int64_t tokens) const {
  const auto slots_T = torch::arange(length_, length_ + tokens, torch::TensorOptions().dtype(torch::kInt64).device(device_));
  return (slots_T.unsqueeze(0) - starts_B_.unsqueeze(1)).clamp_min(0);
}

torch::Tensor KvCache::next_allowed(int64_t tokens) const {
  const auto int_options = torch::TensorOptions().dtype(torch::kInt64).device(device_);
  const auto query_slots_T1 = torch::arange(length_, length_ + tokens, int_options).unsqueeze(1);
  const auto key_slots_1S = torch::arange(length_ + tokens, int_options).unsqueeze(0);
  const auto causal_TS = key_slots_1S <= query_slots_T1;
  const auto real_key_BS = key_slots_1S >= starts_B_.unsqueeze(1);
  const auto self_TS = key_slots_1S == query_slots_T1;
  return (causal_TS.unsqueeze(0) & real_key_BS.unsqueeze(1)) | self_TS.unsqueeze(0);
}

std::pair<torch::Tensor, torch::Tensor> KvCache::append(int64_t layer, const torch::Tensor& latent_BTL,
                                                        const torch::Tensor& rope_key_BTR) {
  check(layer >= 0 && layer < num_layers(), "KV cache: layer ", layer, " outside [0, ", num_layers(), ")");
  const int64_t T = latent_BTL.size(1);
  check_room(T);
  check(latent_BTL.size(0) == batch_ && latent_BTL.size(2) == kv_lora_rank_, "KV cache: expected latent [", batch_,
        ", T, ", kv_lora_rank_, "], got ", latent_BTL.sizes());
  check(rope_key_BTR.size(0) == batch_ && rope_key_BTR.size(1) == T && rope_key_BTR.size(2) == rope_dim_,
        "KV cache: expected rope key [", batch_, ", ", T, ", ", rope_dim_, "], got ", rope_key_BTR.sizes());
  auto& latent = latent_BSL_[static_cast<size_t>(layer)];
  auto& rope_key = rope_key_BSR_[static_cast<size_t>(layer)];
  latent.narrow(1, length_, T).copy_(latent_BTL);
  rope_key.narrow(1, length_, T).copy_(rope_key_BTR);
  return {latent.narrow(1, 0, length_ + T), rope_key.narrow(1, 0, length_ + T)};
}

void KvCache::advance(int64_t tokens) {
  check_room(tokens);
  length_ += tokens;
}

int64_t KvCache::bytes_per_token_per_layer() const {
  return values_per_token_per_layer() * static_cast<int64_t>(c10::elementSize(dtype_));
}

int64_t KvCache::allocated_bytes() const { return bytes_per_token_per_layer() * num_layers() * batch_ * max_len_; }

int64_t full_kv_values_per_token_per_layer(const ModelConfig& c) {
  return c.num_attention_heads * (c.qk_nope_head_dim + c.qk_rope_head_dim) + c.num_attention_heads * c.v_head_dim;
}

}  // namespace k2f::model
