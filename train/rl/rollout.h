// Agentic rollouts: the model writes an assistant turn; when it stops at
// <|tool_calls_section_end|> the calls are parsed and run (ToolRunner), the turn is closed with
// <|im_end|>, the tool messages and the next assistant header are appended (ChatTemplate::
// render_tool_results) and generation resumes, up to max_tool_calls calls. Every episode keeps
// which tokens the model sampled (the only ones a loss may touch: template and tool-result tokens
// never are) with the sampler's log-probs, so the trainer can check its recomputation.
// Two ways to batch episodes (RolloutOptions::batching):
//   continuous  every episode holds a slot of a model::SlotDecoder: its cache persists across its
//               tool rounds (only new tokens are prefilled), its turns end on their own, and an
//               episode that ends hands its slot to the next one at once (run_continuous);
//   rounds      all episodes of a batch generate one turn together, the round waits for the
//               longest, and each round prefills every context again (run; the former way).
// Generation goes through a Policy function or a TurnDecoder, so tests can script the model.
// Legend: N episodes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/chat_template.h"
#include "data/tokenizer.h"
#include "model/sampler.h"
#include "model/slot_decoder.h"
#include "train/rl/tools.h"
#include "train/rl/turn_parser.h"

namespace k2f::train::rl {

enum class RolloutBatching { continuous, rounds };
const char* rollout_batching_name(RolloutBatching batching);  // "continuous" or "rounds"
// "continuous" or "rounds"; anything else throws naming `key` and the value.
RolloutBatching parse_rollout_batching(const std::string& text, const std::string& key);

struct RolloutOptions {
  model::SamplingOptions sampling;
  RolloutBatching batching = RolloutBatching::continuous;
  int64_t slots = 0;                  // episodes generated at once (a round's batch); 0: all of them
  int64_t max_response_tokens = 128;  // sampled tokens per episode, all turns together (the budget)
  int64_t max_tool_calls = 2;         // calls per episode; later calls get an over_limit message
  uint64_t seed = 0;
  // One per prompt (optional): episode i samples from its own generator, seeded from row_seeds[i]
  // and the round, whatever else shares its batch (model::GenerationOptions::row_seeds). Without
  // them, continuous batching seeds episode i from (seed, i) and rounds batching draws each round's
  // batch from one generator.
  std::vector<uint64_t> row_seeds;
  // Keep the experts the sampler routed every token to (Episode::experts_SMK), for routing replay.
  bool record_routing = false;
  void validate(const std::string& prefix = "rl") const;
};

struct Episode {
  std::vector<int64_t> tokens;            // prompt, then everything after it
  int64_t prompt_length = 0;
  std::vector<uint8_t> sampled;           // per token: 1 where the model sampled it
  std::vector<double> sampler_logprobs;   // per token: the sampler's log_softmax(logits)[token] (0 elsewhere)
  int64_t response_tokens = 0;            // sampled tokens
  bool truncated = false;                 // hit the budget (or ran out of tool rounds) before answering
  bool think_ok = true;                   // every turn opened and closed its thinking properly
  int64_t num_tool_calls = 0;
  ToolStats tool_stats;
  std::string final_content;              // content of the answering turn ("" when truncated)
  std::vector<std::string> tool_messages; // what the model was shown, in order (for logs and tests)
  // The episode's tool programs and working directory, from its first program call until it ends.
  std::shared_ptr<ToolSession> tool_session;
  // With record_routing: per token, the experts each MoE layer routed it to (model::kExpertIdDtype
  // [tokens, M, K]); -1 rows for tokens never fed to the model (tool results after the last round,
  // the final token). A later round's prefill replays the earlier rounds' routing (model::
  // GenerationOptions::prompt_experts), so no token is routed two ways within an episode.
  torch::Tensor experts_SMK;
};

// (contexts, options) -> one generated sequence per context. model_policy wraps model::generate.
using Policy = std::function<std::vector<model::GeneratedSequence>(const std::vector<std::vector<int64_t>>&,
                                                                   const model::GenerationOptions&)>;
Policy model_policy(model::KimiForCausalLM lm);

// Turns in slots, as model::SlotDecoder runs them (its comments say what each call means); tests
// script one.
class TurnDecoder {
 public:
  virtual ~TurnDecoder() = default;
  virtual int64_t slots() const = 0;
  virtual void begin_turn(int64_t slot, const std::vector<int64_t>& tokens, bool fresh, int64_t max_new_tokens,
                          uint64_t seed) = 0;
  virtual std::vector<std::pair<int64_t, model::GeneratedSequence>> decode_until_a_turn_ends() = 0;
};

class RolloutEngine {
 public:
  // All three must outlive the engine.
  RolloutEngine(const data::Tokenizer& tokenizer, const data::ChatTemplate& chat, const ToolRunner& tools);

  // Episodes of `lm` batched as options.batching says.
  std::vector<Episode> run_model(model::KimiForCausalLM lm, const std::vector<std::vector<int64_t>>& prompts,
                                 const RolloutOptions& options) const;
  // Rounds batching: every batch of options.slots episodes generates its turns together.
  std::vector<Episode> run(const Policy& policy, const std::vector<std::vector<int64_t>>& prompts,
                           const RolloutOptions& options) const;
  // Continuous batching: episodes take the decoder's slots in order and leave them when they end.
  std::vector<Episode> run_continuous(TurnDecoder& decoder, const std::vector<std::vector<int64_t>>& prompts,
                                      const RolloutOptions& options) const;
  // model::SlotDecoder of `lm` with `slots` slots, sampling and routing as `options` say.
  std::unique_ptr<TurnDecoder> model_decoder(model::KimiForCausalLM lm, int64_t slots,
                                             const RolloutOptions& options) const;

  // Appends the sampled tokens of one generation step to `episode` (at most `budget` of them) and
  // handles what they end with; returns true when the episode is over. Exposed for tests.
  bool absorb(Episode& episode, const model::GeneratedSequence& generated, int64_t budget, bool last_round,
              int64_t max_tool_calls) const;

  const std::vector<int64_t>& stop_ids() const { return stop_ids_; }

 private:
  // Every rounds-batched batch of at most options.slots episodes through run().
  std::vector<Episode> run_in_batches(const Policy& policy, const std::vector<std::vector<int64_t>>& prompts,
                                      const RolloutOptions& options) const;

  const data::Tokenizer& tokenizer_;
  const data::ChatTemplate& chat_;
  const ToolRunner& tools_;
  TurnTokens ids_;
  std::vector<int64_t> stop_ids_;
};

}  // namespace k2f::train::rl
