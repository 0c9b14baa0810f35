#include "model/kv_cache.h"

#include <algorithm>

#include "base/error.h"

namespace k2f::model {

KvCache::KvCache(const ModelConfig& c, int64_t batch, int64_t max_len, torch::ScalarType dtype, torch::Device device)
    : lengths_(static_cast<size_t>(std::max<int64_t>(batch, 0)), 0),
      batch_(batch),
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

int64_t KvCache::length() const { return *std::max_element(lengths_.begin(), lengths_.end()); }

int64_t KvCache::row_length(int64_t b) const {
  check(b >= 0 && b < batch_, "KV cache: row ", b, " outside [0, ", batch_, ")");
  return lengths_[static_cast<size_t>(b)];
}

bool KvCache::uniform() const {
  return std::all_of(lengths_.begin(), lengths_.end(), [&](int64_t n) { return n == lengths_.front(); });
}

torch::Tensor KvCache::lengths_tensor() const { return torch::tensor(lengths_, torch::kInt64).to(device_); }

void KvCache::set_row_starts(const torch::Tensor& starts_B) {
  check(length() == 0, "KV cache: row starts can only be set while the cache is empty (length ", length(), ")");
  check(starts_B.dim() == 1 && starts_B.size(0) == batch_, "KV cache: expected row starts [", batch_, "], got ",
        starts_B.sizes());
  const auto starts = starts_B.to(torch::kInt64).cpu().clone();  // never aliases the caller's tensor
  check(starts.min().item<int64_t>() >= 0 && starts.max().item<int64_t>() < max_len_,
        "KV cache: row starts must lie in [0, max_len ", max_len_, "), got ", starts.min().item<int64_t>(), "..",
        starts.max().item<int64_t>());
  starts_B_ = starts.to(device_);
}

void KvCache::reset() {
  std::fill(lengths_.begin(), lengths_.end(), 0);
  starts_B_.zero_();
}

void KvCache::reset_row(int64_t b) {
  truncate_row(b, 0);
  starts_B_[b] = 0;
}

void KvCache::truncate_row(int64_t b, int64_t length) {
  check(length >= 0 && length <= row_length(b), "KV cache: row ", b, " holds ", row_length(b),
        " slots; cannot keep ", length);
  lengths_[static_cast<size_t>(b)] = length;
  if (parent_) parent_->truncate_row(parent_row_, length);
}

void KvCache::reserve(int64_t max_len) {
  check(!parent_, "KV cache: a row view cannot grow (reserve its cache)");
  if (max_len <= max_len_) return;
  const auto grow = [&](std::vector<torch::Tensor>& buffers) {
    for (auto& buffer : buffers) {
      auto bigger = torch::zeros({batch_, max_len, buffer.size(2)}, buffer.options());
      bigger.narrow(1, 0, max_len_).copy_(buffer);
      buffer = std::move(bigger);
    }
  };
  grow(latent_BSL_);
  grow(rope_key_BSR_);
  max_len_ = max_len;
}

KvCache KvCache::row(int64_t b) {
  check(!parent_, "KV cache: a row view has no rows of its own to view");
  KvCache view = *this;
  view.batch_ = 1;
  for (auto& buffer : view.latent_BSL_) buffer = buffer.narrow(0, b, 1);
  for (auto& buffer : view.rope_key_BSR_) buffer = buffer.narrow(0, b, 1);
  view.starts_B_ = starts_B_.narrow(0, b, 1);
  view.lengths_ = {row_length(b)};
  view.parent_ = this;
  view.parent_row_ = b;
  return view;
}

void KvCache::check_room(int64_t tokens) const {
  check(tokens > 0, "KV cache: expected at least one new token, got ", tokens);
  check(length() + tokens <= max_len_, "KV cache: ", tokens, " new tokens after ", length(), " would exceed max_len ",
        max_len_);
}

torch::Tensor KvCache::next_positions(int64_t tokens) const {
  const auto int_options = torch::TensorOptions().dtype(torch::kInt64).device(device_);
  const auto slots_BT = lengths_tensor().unsqueeze(1) + torch::arange(tokens, int_options).unsqueeze(0);
  return (slots_BT - starts_B_.unsqueeze(1)).clamp_min(0);
}

torch::Tensor KvCache::next_allowed(int64_t tokens) const {
  const auto int_options = torch::TensorOptions().dtype(torch::kInt64).device(device_);
  const auto query_slots_BT1 = (lengths_tensor().unsqueeze(1) + torch::arange(tokens, int_options).unsqueeze(0)).unsqueeze(2);
  const auto key_slots_11S = torch::arange(length() + tokens, int_options).view({1, 1, -1});
  const auto causal_BTS = key_slots_11S <= query_slots_BT1;
  const auto real_key_B1S = key_slots_11S >= starts_B_.view({-1, 1, 1});
  const auto self_BTS = key_slots_11S == query_slots_BT1;
  return (causal_BTS & real_key_B1S) | self_BTS;
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
  const int64_t length = this->length();
  if (uniform()) {
    latent.narrow(1, length, T).copy_(latent_BTL);
    rope_key.narrow(1, length, T).copy_(rope_key_BTR);
  } else {  // rows of different lengths: each row's entries go after its own end
    const auto int_options = torch::TensorOptions().dtype(torch::kInt64).device(device_);
    const auto slots_BT = lengths_tensor().unsqueeze(1) + torch::arange(T, int_options).unsqueeze(0);
    const auto rows_BT = torch::arange(batch_, int_options).unsqueeze(1).expand({batch_, T});
    latent.index_put_({rows_BT, slots_BT}, latent_BTL.to(latent.scalar_type()));
    rope_key.index_put_({rows_BT, slots_BT}, rope_key_BTR.to(rope_key.scalar_type()));
  }
  return {latent.narrow(1, 0, length + T), rope_key.narrow(1, 0, length + T)};
}

void KvCache::advance(int64_t tokens) {
  check_room(tokens);
  for (auto& n : lengths_) n += tokens;
  if (parent_) parent_->lengths_[static_cast<size_t>(parent_row_)] += tokens;
}

int64_t KvCache::bytes_per_token_per_layer() const {
  return values_per_token_per_layer() * static_cast<int64_t>(c10::elementSize(dtype_));
}

int64_t KvCache::allocated_bytes() const { return bytes_per_token_per_layer() * num_layers() * batch_ * max_len_; }

int64_t full_kv_values_per_token_per_layer(const ModelConfig& c) {
  return c.num_attention_heads * (c.qk_nope_head_dim + c.qk_rope_head_dim) + c.num_attention_heads * c.v_head_dim;
}

}  // namespace k2f::model
