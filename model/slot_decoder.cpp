#include "model/slot_decoder.h"

#include <algorithm>

#include "base/error.h"

namespace k2f::model {

namespace {
constexpr int64_t kFirstCacheSlots = 256;  // the cache grows (doubling) as slots need more
}  // namespace

void SlotDecoderOptions::validate() const { sampling.validate(); }

SlotDecoder::SlotDecoder(KimiForCausalLM lm, int64_t slots, SlotDecoderOptions options)
    : lm_(std::move(lm)),
      options_(std::move(options)),
      slots_(static_cast<size_t>(std::max<int64_t>(slots, 0))),
      cache_(lm_->make_cache(std::max<int64_t>(slots, 1),
                             std::min(kFirstCacheSlots, lm_->model->config.max_position_embeddings))),
      max_positions_(lm_->model->config.max_position_embeddings) {
  check(slots > 0, "slot decoder: slots (", slots, ") must be positive");
  options_.validate();
  if (options_.record_routing) recorder_.emplace(*lm_->model);
}

bool SlotDecoder::running(int64_t slot) const {
  check(slot >= 0 && slot < slots(), "slot decoder: slot ", slot, " outside [0, ", slots(), ")");
  return slots_[static_cast<size_t>(slot)].running;
}

int64_t SlotDecoder::held_tokens(int64_t slot) const {
  running(slot);  // checks the index
  return cache_.row_length(slot);
}

void SlotDecoder::grow_cache_for(int64_t length) {
  if (length <= cache_.max_len()) return;
  cache_.reserve(std::min(max_positions_, std::max(length, 2 * cache_.max_len())));
}

void SlotDecoder::begin_turn(int64_t slot, const std::vector<int64_t>& tokens, bool fresh, int64_t max_new_tokens,
                             uint64_t seed) {
  check(!running(slot), "slot decoder: slot ", slot, " already runs a turn");
  check(max_new_tokens >= 0, "slot decoder: max_new_tokens (", max_new_tokens, ") must be >= 0");
  check(!tokens.empty(), "slot decoder: a turn needs at least one token to follow (slot ", slot, ")");
  const int64_t vocab_size = lm_->model->config.vocab_size;
  for (const int64_t id : tokens)
    check(id >= 0 && id < vocab_size, "slot decoder: token id ", id, " outside the vocabulary [0, ", vocab_size, ")");
  Slot& s = slots_[static_cast<size_t>(slot)];
  check(fresh || !s.stale, "slot decoder: slot ", slot, " ended a turn without room for its tokens; begin it fresh");
  if (fresh) {
    cache_.reset_row(slot);
    s.routing.clear();
    s.stale = false;
  }
  s.running = true;
  s.pending = -1;
  s.logits_1V = torch::Tensor();
  s.generator = make_generator(seed);
  s.turn = GeneratedSequence{};
  const int64_t T = static_cast<int64_t>(tokens.size());
  const int64_t held = cache_.row_length(slot) + T;
  s.room = std::min(max_new_tokens, max_positions_ - held);
  if (s.room <= 0) {  // ends at once; the tokens are never fed (their routing rows stay -1)
    s.unfed = T;
    return;
  }
  grow_cache_for(held);
  torch::NoGradGuard no_grad;
  const auto device = lm_->lm_head->weight.device();
  auto row = cache_.row(slot);
  const auto tokens_1T = torch::tensor(tokens, torch::kInt64).view({1, T}).to(device);
  s.logits_1V = lm_->forward_cached(tokens_1T, row, options_.attention).select(1, T - 1);
  if (recorder_) s.routing.push_back(recorder_->recorded().view({T, -1, lm_->model->config.num_experts_per_tok}));
  ++prefills_;
}

void SlotDecoder::feed_pending() {
  const int64_t B = slots();
  std::vector<int64_t> tokens(static_cast<size_t>(B), 0), lengths(static_cast<size_t>(B));
  bool any = false;
  for (int64_t b = 0; b < B; ++b) {
    lengths[static_cast<size_t>(b)] = cache_.row_length(b);
    const int64_t pending = slots_[static_cast<size_t>(b)].pending;
    if (pending >= 0) tokens[static_cast<size_t>(b)] = pending;
    any = any || pending >= 0;
  }
  if (!any) return;
  grow_cache_for(cache_.length() + 1);
  torch::NoGradGuard no_grad;
  const auto device = lm_->lm_head->weight.device();
  // Every row decodes (one batched forward); rows with nothing to feed are put back as they were.
  const auto logits_BV =
      lm_->forward_cached(torch::tensor(tokens, torch::kInt64).view({B, 1}).to(device), cache_, options_.attention)
          .select(1, 0);
  const auto routed_BMK =
      recorder_ ? recorder_->recorded().view({B, -1, lm_->model->config.num_experts_per_tok}) : torch::Tensor();
  for (int64_t b = 0; b < B; ++b) {
    Slot& s = slots_[static_cast<size_t>(b)];
    if (s.pending < 0) {
      cache_.truncate_row(b, lengths[static_cast<size_t>(b)]);
      continue;
    }
    s.pending = -1;
    s.logits_1V = logits_BV.narrow(0, b, 1);
    if (recorder_) s.routing.push_back(routed_BMK.narrow(0, b, 1).clone());
  }
  ++decode_steps_;
}

GeneratedSequence SlotDecoder::finish(int64_t slot, FinishReason reason) {
  Slot& s = slots_[static_cast<size_t>(slot)];
  s.turn.finish = reason;
  if (recorder_) {
    std::vector<torch::Tensor> rows = s.routing;
    const int64_t M = num_moe_layers(*lm_->model), K = lm_->model->config.num_experts_per_tok;
    const int64_t never_fed = s.unfed + (s.turn.tokens.empty() ? 0 : 1);  // the last sampled token is not fed
    if (never_fed > 0) rows.push_back(torch::full({never_fed, M, K}, -1, kExpertIdDtype));
    s.turn.experts_SMK = rows.empty() ? torch::full({0, M, K}, -1, kExpertIdDtype) : torch::cat(rows);
  }
  s.stale = s.unfed > 0;
  s.running = false;
  s.unfed = 0;
  s.logits_1V = torch::Tensor();
  s.generator.reset();
  return std::move(s.turn);
}

void SlotDecoder::sample_running(std::vector<std::pair<int64_t, GeneratedSequence>>& ended) {
  const auto& stops = options_.stop_token_ids;
  for (int64_t b = 0; b < slots(); ++b) {
    Slot& s = slots_[static_cast<size_t>(b)];
    if (!s.running) continue;
    if (s.room <= 0) {  // begun without room
      ended.emplace_back(b, finish(b, FinishReason::kLength));
      continue;
    }
    if (!s.logits_1V.defined()) continue;
    const auto sampled = sample_tokens(s.logits_1V, options_.sampling, *s.generator);
    s.logits_1V = torch::Tensor();
    const int64_t id = sampled.tokens_B.item<int64_t>();
    s.turn.tokens.push_back(id);
    s.turn.model_logprobs.push_back(sampled.model_logprobs_B.to(torch::kFloat64).item<double>());
    s.turn.sampling_logprobs.push_back(sampled.sampling_logprobs_B.to(torch::kFloat64).item<double>());
    --s.room;
    if (std::find(stops.begin(), stops.end(), id) != stops.end()) {
      ended.emplace_back(b, finish(b, FinishReason::kStop));
    } else if (s.room == 0) {
      ended.emplace_back(b, finish(b, FinishReason::kLength));
    } else {
      s.pending = id;
    }
  }
}

std::vector<std::pair<int64_t, GeneratedSequence>> SlotDecoder::decode_until_a_turn_ends() {
  std::vector<std::pair<int64_t, GeneratedSequence>> ended;
  while (true) {
    sample_running(ended);
    if (!ended.empty()) return ended;
    const bool any_pending = std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return s.pending >= 0; });
    if (!any_pending) return ended;  // no turn runs
    feed_pending();
  }
}

}  // namespace k2f::model
