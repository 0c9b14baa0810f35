// Sampling and generation, kept out of the model code: temperature (0 = greedy), top-k and top-p
// on each step's logits, drawn from a CPU torch::Generator made from the seed, so one seed gives
// the same tokens on any device (logits come to the CPU each step; the ids must anyway, to stream
// and to stop). Each drawn token's log-prob is returned twice: under the model's own distribution
// (log_softmax of the untempered logits, what the trainer recomputes for RL) and under the
// distribution actually sampled from (after temperature and truncation, for importance ratios).
// Legend: B rows, V vocab.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include "model/kimi_model.h"

namespace k2f::model {

struct SamplingOptions {
  double temperature = 1.0;  // 0: greedy (argmax; top-k and top-p then change nothing)
  int64_t top_k = 0;         // keep the k most likely tokens (ties at the k-th kept too); 0: all
  double top_p = 1.0;        // keep the fewest most likely tokens whose mass reaches top_p; 1: all
  // Throws naming `prefix`.field and the value ("sampling.top_p (1.5) must be in (0, 1]").
  void validate(const std::string& prefix = "sampling") const;
};

// Logits of the sampling distribution [B,V] (fp32, or fp64 for fp64 logits): logits/temperature,
// -inf outside the top-k, then -inf outside the top-p set of what remains (HF's order). Not for
// temperature 0.
torch::Tensor sampling_logits(const torch::Tensor& logits_BV, const SamplingOptions& options);

struct SampledTokens {
  torch::Tensor tokens_B;             // int64
  torch::Tensor model_logprobs_B;     // log_softmax(logits)[token]
  torch::Tensor sampling_logprobs_B;  // log-prob under the sampled distribution (0 when greedy)
};

// One token per row from logits [B,V] (any device; the result is on the CPU).
SampledTokens sample_tokens(const torch::Tensor& logits_BV, const SamplingOptions& options, at::Generator& generator);

// A CPU generator seeded with `seed`.
at::Generator make_generator(uint64_t seed);

struct GenerationOptions {
  SamplingOptions sampling;
  int64_t max_new_tokens = 256;
  std::vector<int64_t> stop_token_ids;  // a row ends after emitting one of these (it is kept)
  uint64_t seed = 0;
  // One seed per prompt: row b draws from its own generator, so its tokens do not depend on which
  // other rows share the batch (data-parallel RL splits a step's rollouts over ranks and still
  // samples what one process would). Empty: one generator from `seed` for the whole batch.
  std::vector<uint64_t> row_seeds;
  LatentAttention attention = LatentAttention::kAbsorbed;
  // Record the experts every MoE layer chose for each token (GeneratedSequence::experts_SMK), for
  // routing replay (model/routing_replay.h).
  bool record_routing = false;
  // Optional, one per prompt: kExpertIdDtype [prompt length, M, K], the experts the prefill routes
  // that prompt's tokens to (rows of -1 route freely). A multi-round episode (tool calls) hands
  // back what earlier rounds recorded, so each token keeps one routing in every pass.
  std::vector<torch::Tensor> prompt_experts;
  void validate() const;
};

enum class FinishReason { kStop, kLength };
const char* finish_reason_name(FinishReason reason);  // "stop" or "length"

struct GeneratedSequence {
  std::vector<int64_t> tokens;  // new tokens only; the last is the stop token when finish is kStop
  std::vector<double> model_logprobs;
  std::vector<double> sampling_logprobs;
  FinishReason finish = FinishReason::kLength;
  // With record_routing: the experts (kExpertIdDtype [S, M, K]) each MoE layer chose for the row's
  // prompt and new tokens, S = prompt length + tokens.size(); -1 for the last new token when it was
  // never fed back (the loop ended on it). Undefined otherwise.
  torch::Tensor experts_SMK;
};

// After each step: every row's new token, -1 for rows that had already finished.
using StepCallback = std::function<void(const std::vector<int64_t>& tokens_B)>;

// Prefills all prompts at once (rows of different lengths left-padded in the cache), then decodes
// one token per step for every row until each has stopped or produced max_new_tokens. Rows are
// sampled together, so the same seed reproduces a run for the same prompts in the same order
// (with row_seeds, the same row seed reproduces that row in any batch).
std::vector<GeneratedSequence> generate(KimiForCausalLM& lm, const std::vector<std::vector<int64_t>>& prompts,
                                        const GenerationOptions& options, const StepCallback& on_step = {});

}  // namespace k2f::model
