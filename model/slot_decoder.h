// Continuous batching for multi-turn generation (agentic rollouts): a fixed number of slots, each
// holding one sequence in its own row of one latent KV cache. A turn is begun in a slot with the
// tokens to append (a new sequence's prompt, or the tool results after the slot's last turn),
// which are prefilled in that row alone; then every running turn decodes one token per step in one
// batched forward. When a turn ends (a stop token, its token limit, or the model's positions) its
// slot is handed back at once, so the caller can run tools and begin the next turn, or refill the
// slot with a new sequence, while the other slots keep decoding: nobody waits for the longest
// turn, and no earlier token is ever computed twice. Each turn samples from its own generator
// seeded by the caller, so what a slot samples does not depend on what shares the batch.
// Legend: B slots, V vocab, S tokens a slot holds, M MoE layers, K experts per token.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "model/kv_cache.h"
#include "model/routing_replay.h"
#include "model/sampler.h"

namespace k2f::model {

struct SlotDecoderOptions {
  SamplingOptions sampling;
  std::vector<int64_t> stop_token_ids;  // a turn ends after emitting one of these (it is kept)
  LatentAttention attention = LatentAttention::kAbsorbed;
  // Record the experts each MoE layer chose for every token a slot holds (GeneratedSequence::
  // experts_SMK of each finished turn covers the slot's whole sequence).
  bool record_routing = false;
  void validate() const;
};

class SlotDecoder {
 public:
  SlotDecoder(KimiForCausalLM lm, int64_t slots, SlotDecoderOptions options);

  int64_t slots() const { return static_cast<int64_t>(slots_.size()); }
  bool running(int64_t slot) const;           // a turn is under way in it
  int64_t held_tokens(int64_t slot) const;    // tokens its row of the cache holds

  // Begins a turn in a slot with no turn running: appends `tokens` after what the slot holds
  // (`fresh`: empties it first), then samples up to `max_new_tokens` from a generator seeded with
  // `seed`. A turn whose tokens leave no position in the model's range ends at once, with no
  // tokens and finish "length"; such a slot can only be begun fresh again.
  void begin_turn(int64_t slot, const std::vector<int64_t>& tokens, bool fresh, int64_t max_new_tokens, uint64_t seed);

  // Decodes every running turn until at least one ends; returns (slot, what the turn generated)
  // for each that did. The turn's last token is not in the slot yet: the next turn's tokens follow
  // it. Empty when no turn runs.
  std::vector<std::pair<int64_t, GeneratedSequence>> decode_until_a_turn_ends();

  // Decode steps (batched forwards) and prefills run so far.
  int64_t decode_steps() const { return decode_steps_; }
  int64_t prefills() const { return prefills_; }

 private:
  struct Slot {
    bool running = false;
    int64_t pending = -1;            // sampled, not yet fed
    torch::Tensor logits_1V;         // the next token's logits, once fed
    int64_t room = 0;                // tokens the turn may still sample
    int64_t unfed = 0;               // tokens begun with but never fed (no room for them)
    bool stale = false;              // the row no longer holds the caller's sequence: fresh turns only
    std::optional<at::Generator> generator;
    GeneratedSequence turn;
    std::vector<torch::Tensor> routing;  // per fed chunk: kExpertIdDtype [n, M, K]
  };
  void grow_cache_for(int64_t length);
  void feed_pending();
  // Samples every running slot that has logits; moves the ended ones' turns to `ended`.
  void sample_running(std::vector<std::pair<int64_t, GeneratedSequence>>& ended);
  GeneratedSequence finish(int64_t slot, FinishReason reason);

  KimiForCausalLM lm_;
  SlotDecoderOptions options_;
  std::vector<Slot> slots_;
  KvCache cache_;
  std::optional<RoutingRecorder> recorder_;
  int64_t max_positions_ = 0;
  int64_t decode_steps_ = 0, prefills_ = 0;
};

}  // namespace k2f::model
