#include "model/sampler.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "base/error.h"
#include "model/routing_replay.h"

namespace k2f::model {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

torch::Tensor mask_outside_top_k(const torch::Tensor& logits_BV, int64_t k) {
  if (k <= 0 || k >= logits_BV.size(-1)) return logits_BV;
  const auto kth_B1 = std::get<0>(logits_BV.topk(k, -1)).narrow(-1, k - 1, 1);
  return logits_BV.masked_fill(logits_BV < kth_B1, kNegInf);
}

// Removes every token whose more likely tokens already reach mass p (the first one never).
torch::Tensor mask_outside_top_p(const torch::Tensor& logits_BV, double p) {
  if (p >= 1.0) return logits_BV;
  const auto [sorted_BV, order_BV] = logits_BV.sort(-1, /*descending=*/true);
  const auto probs_BV = torch::softmax(sorted_BV, -1);
  const auto mass_before_BV = probs_BV.cumsum(-1) - probs_BV;
  const auto remove_sorted_BV = mass_before_BV >= p;
  const auto remove_BV = torch::zeros_like(remove_sorted_BV).scatter(-1, order_BV, remove_sorted_BV);
  return logits_BV.masked_fill(remove_BV, kNegInf);
}

torch::Tensor gather_rows(const torch::Tensor& values_BV, const torch::Tensor& tokens_B) {
  return values_BV.gather(-1, tokens_B.unsqueeze(-1)).squeeze(-1);
}

}  // namespace

void SamplingOptions::validate(const std::string& prefix) const {
  check(temperature >= 0 && std::isfinite(temperature), prefix, ".temperature (", temperature, ") must be >= 0");
  check(top_k >= 0, prefix, ".top_k (", top_k, ") must be >= 0 (0: off)");
  check(top_p > 0 && top_p <= 1, prefix, ".top_p (", top_p, ") must be in (0, 1]");
}

torch::Tensor sampling_logits(const torch::Tensor& logits_BV, const SamplingOptions& options) {
  check(options.temperature > 0, "sampling_logits: temperature must be > 0, got ", options.temperature);
  const auto wide = logits_BV.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  const auto scaled_BV = logits_BV.to(wide) / options.temperature;
  return mask_outside_top_p(mask_outside_top_k(scaled_BV, options.top_k), options.top_p);
}

SampledTokens sample_tokens(const torch::Tensor& logits_BV, const SamplingOptions& options, at::Generator& generator) {
  options.validate();
  check(logits_BV.dim() == 2, "sample_tokens: expected logits [rows, vocab], got ", logits_BV.sizes());
  const auto wide = logits_BV.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  const auto logits = logits_BV.to(wide).cpu();
  const auto model_logprobs_BV = torch::log_softmax(logits, -1);
  SampledTokens out;
  if (options.temperature == 0) {
    out.tokens_B = logits.argmax(-1);
    out.sampling_logprobs_B = torch::zeros({logits.size(0)}, logits.options());
  } else {
    const auto sampling_logprobs_BV = torch::log_softmax(sampling_logits(logits, options), -1);
    out.tokens_B = torch::multinomial(sampling_logprobs_BV.exp(), 1, /*replacement=*/false, generator).squeeze(-1);
    out.sampling_logprobs_B = gather_rows(sampling_logprobs_BV, out.tokens_B);
  }
  out.model_logprobs_B = gather_rows(model_logprobs_BV, out.tokens_B);
  return out;
}

at::Generator make_generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

void GenerationOptions::validate() const {
  sampling.validate();
  check(max_new_tokens > 0, "max_new_tokens (", max_new_tokens, ") must be positive");
}

namespace {

// The prompts' given routing as one prefill's [B*P, M, K], left-padded like the prompts (-1: free).
torch::Tensor prompt_routing(const std::vector<torch::Tensor>& prompt_experts,
                             const std::vector<std::vector<int64_t>>& prompts, int64_t P) {
  const int64_t B = static_cast<int64_t>(prompts.size());
  check(static_cast<int64_t>(prompt_experts.size()) == B, "generate: ", prompt_experts.size(),
        " prompt routings for ", B, " prompts");
  const auto& first = prompt_experts.front();
  check(first.dim() == 3, "generate: prompt routing of shape ", first.sizes(), " (expected [tokens, M, K])");
  auto experts_BPMK = torch::full({B, P, first.size(1), first.size(2)}, -1, kExpertIdDtype);
  for (int64_t b = 0; b < B; ++b) {
    const auto& given = prompt_experts[static_cast<size_t>(b)];
    const int64_t length = static_cast<int64_t>(prompts[static_cast<size_t>(b)].size());
    check(given.dim() == 3 && given.size(0) == length && given.size(1) == first.size(1) && given.size(2) == first.size(2),
          "generate: prompt ", b, " has routing of shape ", given.sizes(), " for ", length, " tokens (expected [",
          length, ", ", first.size(1), ", ", first.size(2), "])");
    experts_BPMK[b].narrow(0, P - length, length).copy_(given);
  }
  return experts_BPMK.view({B * P, first.size(1), first.size(2)});
}

}  // namespace

const char* finish_reason_name(FinishReason reason) { return reason == FinishReason::kStop ? "stop" : "length"; }

std::vector<GeneratedSequence> generate(KimiForCausalLM& lm, const std::vector<std::vector<int64_t>>& prompts,
                                        const GenerationOptions& options, const StepCallback& on_step) {
  options.validate();
  check(!prompts.empty(), "generate: no prompts");
  const int64_t B = static_cast<int64_t>(prompts.size());
  const int64_t vocab_size = lm->model->config.vocab_size;
  size_t longest = 0;
  for (size_t b = 0; b < prompts.size(); ++b) {
    check(!prompts[b].empty(), "generate: prompt ", b, " is empty");
    for (const int64_t id : prompts[b]) {
      check(id >= 0 && id < vocab_size, "generate: prompt ", b, " holds token id ", id, " outside the vocabulary [0, ",
            vocab_size, ")");
    }
    longest = std::max(longest, prompts[b].size());
  }
  const int64_t P = static_cast<int64_t>(longest);
  // Before the cache is sized: positions past the model's trained range are a request error.
  const int64_t max_positions = lm->model->config.max_position_embeddings;
  check(options.max_new_tokens <= max_positions - P, "generate: the longest prompt (", P, " tokens) plus ",
        options.max_new_tokens, " new tokens exceed the model's max_position_embeddings (", max_positions,
        "): at most ", std::max<int64_t>(0, max_positions - P), " new tokens fit");

  // Left-aligned padding: row b's prompt ends at slot P-1, so every row decodes at the same slot.
  auto prompt_BP = torch::zeros({B, P}, torch::kInt64);
  auto starts_B = torch::zeros({B}, torch::kInt64);
  for (int64_t b = 0; b < B; ++b) {
    const auto& prompt = prompts[static_cast<size_t>(b)];
    const int64_t pad = P - static_cast<int64_t>(prompt.size());
    starts_B[b] = pad;
    prompt_BP[b].narrow(0, pad, P - pad).copy_(torch::tensor(prompt, torch::kInt64));
  }
  const auto device = lm->lm_head->weight.device();
  torch::NoGradGuard no_grad;
  auto cache = lm->make_cache(B, P + options.max_new_tokens - 1);
  cache.set_row_starts(starts_B);
  std::optional<RoutingRecorder> recorder;
  torch::Tensor experts_BSMK;  // slot s of row b: what its token at slot s was routed to
  if (options.record_routing) {
    recorder.emplace(*lm->model);
    const int64_t M = num_moe_layers(*lm->model), K = lm->model->config.num_experts_per_tok;
    experts_BSMK = torch::full({B, P + options.max_new_tokens, M, K}, -1, kExpertIdDtype);
  }
  torch::Tensor logits_BV;
  {
    std::optional<RoutingReplay> replay;
    if (!options.prompt_experts.empty()) replay.emplace(*lm->model, prompt_routing(options.prompt_experts, prompts, P));
    logits_BV = lm->forward_cached(prompt_BP.to(device), cache, options.attention).select(1, P - 1);
  }
  if (recorder) experts_BSMK.narrow(1, 0, P).copy_(recorder->recorded().view({B, P, experts_BSMK.size(2), -1}));

  check(options.row_seeds.empty() || static_cast<int64_t>(options.row_seeds.size()) == B, "generate: ",
        options.row_seeds.size(), " row seeds for ", B, " prompts");
  auto generator = make_generator(options.seed);
  std::vector<at::Generator> row_generators;
  for (const uint64_t seed : options.row_seeds) row_generators.push_back(make_generator(seed));
  const auto sample = [&](const torch::Tensor& logits) {
    if (row_generators.empty()) return sample_tokens(logits, options.sampling, generator);
    std::vector<torch::Tensor> tokens, model_lp, sampling_lp;
    for (int64_t b = 0; b < B; ++b) {
      const auto row = sample_tokens(logits.narrow(0, b, 1), options.sampling, row_generators[static_cast<size_t>(b)]);
      tokens.push_back(row.tokens_B);
      model_lp.push_back(row.model_logprobs_B);
      sampling_lp.push_back(row.sampling_logprobs_B);
    }
    return SampledTokens{torch::cat(tokens), torch::cat(model_lp), torch::cat(sampling_lp)};
  };
  std::vector<GeneratedSequence> out(static_cast<size_t>(B));
  std::vector<bool> finished(static_cast<size_t>(B), false);
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    const auto sampled = sample(logits_BV);
    const auto tokens = sampled.tokens_B.contiguous();
    const auto model_lp = sampled.model_logprobs_B.to(torch::kFloat64).contiguous();
    const auto sampling_lp = sampled.sampling_logprobs_B.to(torch::kFloat64).contiguous();
    std::vector<int64_t> emitted(static_cast<size_t>(B), -1);
    bool all_finished = true;
    for (size_t b = 0; b < out.size(); ++b) {
      if (finished[b]) continue;
      const int64_t id = tokens.data_ptr<int64_t>()[b];
      emitted[b] = id;
      out[b].tokens.push_back(id);
      out[b].model_logprobs.push_back(model_lp.data_ptr<double>()[b]);
      out[b].sampling_logprobs.push_back(sampling_lp.data_ptr<double>()[b]);
      const auto& stops = options.stop_token_ids;
      if (std::find(stops.begin(), stops.end(), id) != stops.end()) {
        finished[b] = true;
        out[b].finish = FinishReason::kStop;
      }
      all_finished = all_finished && finished[b];
    }
    if (on_step) on_step(emitted);
    if (all_finished || step + 1 == options.max_new_tokens) break;
    // Finished rows keep decoding their last token: cheaper than reshaping the batch, never read.
    logits_BV = lm->forward_cached(tokens.view({B, 1}).to(device), cache, options.attention).select(1, 0);
    if (recorder) {  // rows that had finished fed a repeat of their last token: not recorded
      const auto routed_BMK = recorder->recorded().view({B, experts_BSMK.size(2), -1});
      const auto fed_B111 = torch::tensor(emitted, torch::kInt64).ge(0).view({B, 1, 1});
      auto slot_BMK = experts_BSMK.select(1, P + step);
      slot_BMK.copy_(torch::where(fed_B111, routed_BMK, slot_BMK));
    }
  }
  if (recorder) {
    for (int64_t b = 0; b < B; ++b) {
      const int64_t pad = starts_B[b].item<int64_t>();
      auto& row = out[static_cast<size_t>(b)];
      row.experts_SMK = experts_BSMK[b].narrow(0, pad, P - pad + static_cast<int64_t>(row.tokens.size())).clone();
    }
  }
  return out;
}

}  // namespace k2f::model
