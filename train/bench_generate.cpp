#include "train/bench_generate.h"

#include <ATen/Parallel.h>

#include <chrono>

#include "base/error.h"
#include "base/log.h"
#include "base/stopwatch.h"
#include "model/kimi_model.h"
#include "model/kv_cache.h"
#include "quant/qat.h"

namespace k2f::train {
namespace {

using Clock = std::chrono::steady_clock;


struct Run {
  torch::Tensor tokens_BN;  // the generated ids
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

torch::Tensor greedy_B1(const torch::Tensor& logits_BTV) { return logits_BTV.select(1, logits_BTV.size(1) - 1).argmax(-1, true); }

// Prefill, then one cached forward per further token.
Run run_cached(model::KimiForCausalLM& lm, const torch::Tensor& prompt_BP, int64_t new_tokens, model::LatentAttention form) {
  Run run;
  auto cache = lm->make_cache(prompt_BP.size(0), prompt_BP.size(1) + new_tokens);
  auto start = Clock::now();
  std::vector<torch::Tensor> generated = {greedy_B1(lm->forward_cached(prompt_BP, cache, form))};
  run.prefill_seconds = seconds_since(start);
  start = Clock::now();
  for (int64_t n = 1; n < new_tokens; ++n) generated.push_back(greedy_B1(lm->forward_cached(generated.back(), cache, form)));
  run.decode_seconds = seconds_since(start);
  run.tokens_BN = torch::cat(generated, 1);
  return run;
}

// No cache: every new token runs the full forward over prompt + everything generated so far.
Run run_recompute(model::KimiForCausalLM& lm, const torch::Tensor& prompt_BP, int64_t new_tokens) {
  Run run;
  auto start = Clock::now();
  auto sequence_BT = torch::cat({prompt_BP, greedy_B1(lm->forward(prompt_BP))}, 1);
  run.prefill_seconds = seconds_since(start);
  start = Clock::now();
  for (int64_t n = 1; n < new_tokens; ++n) sequence_BT = torch::cat({sequence_BT, greedy_B1(lm->forward(sequence_BT))}, 1);
  run.decode_seconds = seconds_since(start);
  run.tokens_BN = sequence_BT.narrow(1, prompt_BP.size(1), new_tokens);
  return run;
}

Json run_json(const Run& run, int64_t batch, int64_t new_tokens) {
  const double total = run.prefill_seconds + run.decode_seconds;
  return {{"prefill_seconds", run.prefill_seconds},
          {"decode_seconds", run.decode_seconds},
          {"decode_tokens_per_s", static_cast<double>(batch * (new_tokens - 1)) / run.decode_seconds},
          {"tokens_per_s", static_cast<double>(batch * new_tokens) / total}};
}

// Leading generated tokens two runs agree on (greedy paths may part at a near tie in bf16).
int64_t common_prefix(const torch::Tensor& a_BN, const torch::Tensor& b_BN) {
  const auto equal_N = (a_BN == b_BN).all(0);
  int64_t n = 0;
  while (n < equal_N.size(0) && equal_N[n].item<bool>()) ++n;
  return n;
}

Json bench_dtype(const model::ModelConfig& config, torch::ScalarType dtype, const torch::Tensor& prompt_BP,
                 int64_t new_tokens, uint64_t seed) {
  model::KimiForCausalLM lm(config);
  model::init_weights(lm, seed);
  lm->compute_dtype = dtype;
  torch::NoGradGuard no_grad;
  run_cached(lm, prompt_BP, 8, model::LatentAttention::kAbsorbed);  // warm-up: allocator, kernels
  const int64_t B = prompt_BP.size(0);
  const auto absorbed = run_cached(lm, prompt_BP, new_tokens, model::LatentAttention::kAbsorbed);
  const auto expanded = run_cached(lm, prompt_BP, new_tokens, model::LatentAttention::kExpanded);
  log::info("bench generate: ", new_tokens, " tokens with the cache done; recomputing without it");
  const auto recompute = run_recompute(lm, prompt_BP, new_tokens);
  Json out = {{"cache_absorbed", run_json(absorbed, B, new_tokens)},
              {"cache_expanded", run_json(expanded, B, new_tokens)},
              {"recompute", run_json(recompute, B, new_tokens)},
              {"tokens_equal_to_recompute", common_prefix(absorbed.tokens_BN, recompute.tokens_BN)}};
  out["decode_speedup_absorbed_vs_recompute"] =
      out["cache_absorbed"]["decode_tokens_per_s"].get<double>() / out["recompute"]["decode_tokens_per_s"].get<double>();
  out["decode_speedup_absorbed_vs_expanded"] =
      out["cache_absorbed"]["decode_tokens_per_s"].get<double>() / out["cache_expanded"]["decode_tokens_per_s"].get<double>();
  return out;
}

// The INT4 checkpoint's decode: the same model twice in bf16 compute, once with its routed experts
// packed to INT4 (quant::pack_for_inference: K2 Thinking's targets, group 32, W4A16 kernel).
Json bench_int4(const model::ModelConfig& config, const torch::Tensor& prompt_BP, int64_t new_tokens, uint64_t seed) {
  model::KimiForCausalLM dense(config), packed(config);
  model::init_weights(dense, seed);
  model::init_weights(packed, seed);
  int64_t expert_values = 0;
  for (const auto& [path, linear] : quant::qat_target_linears(*dense, quant::QatTargets{}))
    expert_values += linear->weight.numel();
  const quant::QatOptions options;
  const auto paths = quant::pack_for_inference(*packed, options);
  dense->compute_dtype = packed->compute_dtype = torch::kBFloat16;
  torch::NoGradGuard no_grad;
  const auto form = model::LatentAttention::kAbsorbed;
  run_cached(dense, prompt_BP, 8, form);  // warm-up
  run_cached(packed, prompt_BP, 8, form);
  const int64_t B = prompt_BP.size(0);
  const auto bf16 = run_cached(dense, prompt_BP, new_tokens, form);
  const auto int4 = run_cached(packed, prompt_BP, new_tokens, form);
  const double groups = static_cast<double>(expert_values) / static_cast<double>(options.quant.group_size);
  Json out = {{"packed_linears", paths.size()},
              {"group_size", options.quant.group_size},
              {"routed_expert_bytes_bf16", 2 * expert_values},
              {"routed_expert_bytes_int4", static_cast<double>(expert_values) / 2 + 2 * groups},
              {"bf16_cache_absorbed", run_json(bf16, B, new_tokens)},
              {"int4_cache_absorbed", run_json(int4, B, new_tokens)},
              {"tokens_equal_to_bf16", common_prefix(int4.tokens_BN, bf16.tokens_BN)}};
  out["decode_speedup_int4_vs_bf16"] = out["int4_cache_absorbed"]["decode_tokens_per_s"].get<double>() /
                                       out["bf16_cache_absorbed"]["decode_tokens_per_s"].get<double>();
  return out;
}

Json cache_size_json(const model::ModelConfig& config, torch::ScalarType dtype) {
  const model::KvCache probe(config, 1, 1, dtype);
  const int64_t element = static_cast<int64_t>(c10::elementSize(dtype));
  const int64_t full_values = model::full_kv_values_per_token_per_layer(config);
  return {{"latent_values_per_token_per_layer", probe.values_per_token_per_layer()},
          {"latent_bytes_per_token_per_layer", probe.bytes_per_token_per_layer()},
          {"full_kv_values_per_token_per_layer", full_values},
          {"full_kv_bytes_per_token_per_layer", full_values * element},
          {"full_over_latent", static_cast<double>(full_values) / static_cast<double>(probe.values_per_token_per_layer())}};
}

}  // namespace

Json bench_generate(const Recipe& recipe, const GenerateBenchOptions& options) {
  check(options.new_tokens >= 2, "--new-tokens (", options.new_tokens, ") must be >= 2");
  check(options.prompt_tokens >= 1, "--prompt-tokens (", options.prompt_tokens, ") must be >= 1");
  check(options.batch >= 1, "--batch (", options.batch, ") must be >= 1");
  const auto config = model_config_from_recipe(recipe);
  const auto seed = static_cast<uint64_t>(recipe.get_int("train.seed"));
  torch::manual_seed(seed);
  const auto prompt_BP = torch::randint(config.vocab_size, {options.batch, options.prompt_tokens}, torch::kInt64);
  Json report = {{"benchmark", "generate"},
                 {"recipe", recipe.source()},
                 {"threads", at::get_num_threads()},
                 {"batch", options.batch},
                 {"prompt_tokens", options.prompt_tokens},
                 {"new_tokens", options.new_tokens},
                 {"decoding", "greedy"},
                 {"cache_bf16", cache_size_json(config, torch::kBFloat16)},
                 {"cache_fp32", cache_size_json(config, torch::kFloat32)}};
  for (const auto dtype : options.dtypes) {
    const std::string name = dtype == torch::kBFloat16 ? "bf16" : "fp32";
    log::info("bench generate: timing ", name);
    report[name] = bench_dtype(config, dtype, prompt_BP, options.new_tokens, seed);
  }
  if (options.int4) {
    log::info("bench generate: timing INT4 routed experts (W4A16) against bf16");
    report["int4"] = bench_int4(config, prompt_BP, options.new_tokens, seed);
  }
  return report;
}

}  // namespace k2f::train
