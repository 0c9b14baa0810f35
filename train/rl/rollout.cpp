#include "train/rl/rollout.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "base/error.h"

namespace k2f::train::rl {

const char* rollout_batching_name(RolloutBatching batching) {
  return batching == RolloutBatching::continuous ? "continuous" : "rounds";
}

RolloutBatching parse_rollout_batching(const std::string& text, const std::string& key) {
  if (text == "continuous") return RolloutBatching::continuous;
  if (text == "rounds") return RolloutBatching::rounds;
  throw Error(key + " (\"" + text + "\") must be \"continuous\" or \"rounds\"");
}

void RolloutOptions::validate(const std::string& prefix) const {
  sampling.validate(prefix);
  check(slots >= 0, prefix, ".rollout_slots (", slots, ") must be >= 0 (0: every episode at once)");
  check(max_response_tokens > 0, prefix, ".max_response_tokens (", max_response_tokens, ") must be positive");
  check(max_tool_calls >= 0, prefix, ".max_tool_calls (", max_tool_calls, ") must be >= 0");
}

Policy model_policy(model::KimiForCausalLM lm) {
  return [lm](const std::vector<std::vector<int64_t>>& contexts, model::GenerationOptions options) mutable {
    // Tool results grow the context between rounds: a turn may take only the positions left
    // (its rows end "length", so the episode is truncated), and none left means no turn at all.
    size_t longest = 0;
    for (const auto& context : contexts) longest = std::max(longest, context.size());
    const int64_t room = lm->model->config.max_position_embeddings - static_cast<int64_t>(longest);
    if (room <= 0) return std::vector<model::GeneratedSequence>(contexts.size());
    options.max_new_tokens = std::min(options.max_new_tokens, room);
    return model::generate(lm, contexts, options);
  };
}

RolloutEngine::RolloutEngine(const data::Tokenizer& tokenizer, const data::ChatTemplate& chat, const ToolRunner& tools)
    : tokenizer_(tokenizer), chat_(chat), tools_(tools), ids_(TurnTokens::from(tokenizer)) {
  stop_ids_ = {ids_.section_end, ids_.im_end};
  if (tokenizer.eos_id() >= 0) stop_ids_.push_back(tokenizer.eos_id());
}

namespace {

int64_t last_turn_start(const Episode& e) {
  // The current turn starts after the last non-sampled token (prompt or tool results).
  int64_t start = static_cast<int64_t>(e.tokens.size());
  while (start > e.prompt_length && e.sampled[static_cast<size_t>(start - 1)]) --start;
  return start;
}

}  // namespace

bool RolloutEngine::absorb(Episode& e, const model::GeneratedSequence& generated, int64_t budget, bool last_round,
                           int64_t max_tool_calls) const {
  const int64_t turn_start = last_turn_start(e);
  const int64_t taken = std::min<int64_t>(budget, static_cast<int64_t>(generated.tokens.size()));
  for (int64_t t = 0; t < taken; ++t) {
    e.tokens.push_back(generated.tokens[static_cast<size_t>(t)]);
    e.sampled.push_back(1);
    e.sampler_logprobs.push_back(generated.model_logprobs[static_cast<size_t>(t)]);
  }
  e.response_tokens += taken;
  if (generated.experts_SMK.defined()) {
    const int64_t length = static_cast<int64_t>(e.tokens.size());
    check(generated.experts_SMK.size(0) >= length, "rollout: routing recorded for ", generated.experts_SMK.size(0),
          " tokens of an episode of ", length);
    e.experts_SMK = generated.experts_SMK.narrow(0, 0, length);
  }
  const std::vector<int64_t> turn(e.tokens.begin() + turn_start, e.tokens.end());
  const ParsedTurn parsed = parse_assistant_turn(turn, ids_, tokenizer_);
  e.think_ok = e.think_ok && parsed.think_ok;
  const bool stopped = generated.finish == model::FinishReason::kStop &&
                       taken == static_cast<int64_t>(generated.tokens.size()) && taken > 0;
  if (!stopped) {
    e.truncated = true;
    return true;
  }
  if (e.tokens.back() != ids_.section_end) {  // <|im_end|> or eos: the answer
    e.final_content = parsed.content;
    return true;
  }
  // A tool-use turn: run every call, show the results, resume.
  std::vector<data::ChatMessage> messages;
  if (!e.tool_session && tools_.has_programs()) e.tool_session = tools_.open_session();
  for (const auto& call : parsed.calls) {
    const auto started = std::chrono::steady_clock::now();
    const ToolResult r = e.num_tool_calls < max_tool_calls ? tools_.run(call, e.num_tool_calls, e.tool_session.get())
                                                           : tools_.refuse_over_limit(call, e.num_tool_calls, max_tool_calls);
    e.tool_stats.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    ++e.num_tool_calls;
    e.tool_stats.add(r.event);
    data::ChatMessage m;
    m.role = data::ChatRole::tool;
    m.header = r.tool_name;
    m.content = r.content;
    m.tool_call_id = r.call_id;
    e.tool_messages.push_back(r.content);
    messages.push_back(std::move(m));
  }
  const auto shown = chat_.render_tool_results(messages);
  for (const int32_t id : shown) {
    e.tokens.push_back(id);
    e.sampled.push_back(0);
    e.sampler_logprobs.push_back(0.0);
  }
  if (e.experts_SMK.defined()) {  // not computed yet: the next round's prefill records them
    const auto unknown = torch::full({static_cast<int64_t>(shown.size()), e.experts_SMK.size(1), e.experts_SMK.size(2)},
                                     -1, e.experts_SMK.options());
    e.experts_SMK = torch::cat({e.experts_SMK, unknown});
  }
  if (last_round) {
    e.truncated = true;  // no round left to answer in
    return true;
  }
  return false;
}

namespace {

std::vector<Episode> start_episodes(const std::vector<std::vector<int64_t>>& prompts, const RolloutOptions& options) {
  options.validate();
  check(options.row_seeds.empty() || options.row_seeds.size() == prompts.size(), "rollout: ", options.row_seeds.size(),
        " row seeds for ", prompts.size(), " prompts");
  std::vector<Episode> episodes(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    check(!prompts[i].empty(), "rollout: prompt ", i, " is empty");
    episodes[i].tokens = prompts[i];
    episodes[i].prompt_length = static_cast<int64_t>(prompts[i].size());
    episodes[i].sampled.assign(prompts[i].size(), 0);
    episodes[i].sampler_logprobs.assign(prompts[i].size(), 0.0);
  }
  return episodes;
}

// The generator seed of episode i's turn in `round` (rounds batching seeds row seeds the same way).
uint64_t turn_seed(const RolloutOptions& options, size_t i, int64_t round) {
  const uint64_t episode_seed =
      options.row_seeds.empty() ? options.seed * 1000003ull + 7919ull * (static_cast<uint64_t>(i) + 1) : options.row_seeds[i];
  return episode_seed * 1000003ull + static_cast<uint64_t>(round);
}

class ModelTurnDecoder : public TurnDecoder {
 public:
  ModelTurnDecoder(model::KimiForCausalLM lm, int64_t slots, model::SlotDecoderOptions options)
      : decoder_(std::move(lm), slots, std::move(options)) {}
  int64_t slots() const override { return decoder_.slots(); }
  void begin_turn(int64_t slot, const std::vector<int64_t>& tokens, bool fresh, int64_t max_new_tokens,
                  uint64_t seed) override {
    decoder_.begin_turn(slot, tokens, fresh, max_new_tokens, seed);
  }
  std::vector<std::pair<int64_t, model::GeneratedSequence>> decode_until_a_turn_ends() override {
    return decoder_.decode_until_a_turn_ends();
  }

 private:
  model::SlotDecoder decoder_;
};

}  // namespace

std::unique_ptr<TurnDecoder> RolloutEngine::model_decoder(model::KimiForCausalLM lm, int64_t slots,
                                                          const RolloutOptions& options) const {
  model::SlotDecoderOptions decoding;
  decoding.sampling = options.sampling;
  decoding.stop_token_ids = stop_ids_;
  decoding.record_routing = options.record_routing;
  return std::make_unique<ModelTurnDecoder>(std::move(lm), slots, std::move(decoding));
}

std::vector<Episode> RolloutEngine::run_model(model::KimiForCausalLM lm, const std::vector<std::vector<int64_t>>& prompts,
                                              const RolloutOptions& options) const {
  if (prompts.empty()) return {};
  const int64_t all = static_cast<int64_t>(prompts.size());
  const int64_t slots = options.slots > 0 ? std::min(options.slots, all) : all;
  if (options.batching == RolloutBatching::rounds) return run_in_batches(model_policy(lm), prompts, options);
  const auto decoder = model_decoder(lm, slots, options);
  return run_continuous(*decoder, prompts, options);
}

std::vector<Episode> RolloutEngine::run_in_batches(const Policy& policy, const std::vector<std::vector<int64_t>>& prompts,
                                                   const RolloutOptions& options) const {
  const size_t rows = options.slots > 0 ? static_cast<size_t>(options.slots) : prompts.size();
  std::vector<Episode> episodes;
  for (size_t first = 0; first < prompts.size(); first += rows) {
    const size_t end = std::min(prompts.size(), first + rows);
    RolloutOptions part = options;
    if (!options.row_seeds.empty())
      part.row_seeds.assign(options.row_seeds.begin() + static_cast<int64_t>(first),
                            options.row_seeds.begin() + static_cast<int64_t>(end));
    part.seed = options.seed + first;  // each batch its own stream
    const std::vector<std::vector<int64_t>> batch(prompts.begin() + static_cast<int64_t>(first),
                                                  prompts.begin() + static_cast<int64_t>(end));
    for (auto& episode : run(policy, batch, part)) episodes.push_back(std::move(episode));
  }
  return episodes;
}

std::vector<Episode> RolloutEngine::run_continuous(TurnDecoder& decoder, const std::vector<std::vector<int64_t>>& prompts,
                                                   const RolloutOptions& options) const {
  std::vector<Episode> episodes = start_episodes(prompts, options);
  struct Live {
    size_t episode = 0;
    int64_t round = 0;
    size_t fed = 0;  // tokens of the episode the slot holds or was handed
  };
  std::vector<std::optional<Live>> in_slot(static_cast<size_t>(decoder.slots()));
  size_t next = 0;
  const auto begin_turn = [&](size_t slot, bool fresh) {
    Live& live = *in_slot[slot];
    Episode& e = episodes[live.episode];
    const std::vector<int64_t> tokens(e.tokens.begin() + static_cast<int64_t>(live.fed), e.tokens.end());
    live.fed = e.tokens.size();
    decoder.begin_turn(static_cast<int64_t>(slot), tokens, fresh, options.max_response_tokens - e.response_tokens,
                       turn_seed(options, live.episode, live.round));
  };
  const auto refill = [&](size_t slot) {
    in_slot[slot].reset();
    if (next == episodes.size()) return;
    in_slot[slot] = Live{next++, 0, 0};
    begin_turn(slot, /*fresh=*/true);
  };
  for (size_t slot = 0; slot < in_slot.size(); ++slot) refill(slot);
  size_t live = std::count_if(in_slot.begin(), in_slot.end(), [](const auto& l) { return l.has_value(); });
  while (live > 0) {
    auto ended = decoder.decode_until_a_turn_ends();
    check(!ended.empty(), "rollout: the decoder ended no turn while ", live, " episode(s) were running");
    for (auto& [slot_index, generated] : ended) {
      const size_t slot = static_cast<size_t>(slot_index);
      check(slot < in_slot.size() && in_slot[slot], "rollout: the decoder ended a turn in slot ", slot_index,
            ", which runs no episode");
      Live& l = *in_slot[slot];
      Episode& e = episodes[l.episode];
      if (!generated.tokens.empty()) l.fed += generated.tokens.size() - 1;  // its last token is not fed yet
      const bool over = absorb(e, generated, options.max_response_tokens - e.response_tokens,
                               l.round == options.max_tool_calls, options.max_tool_calls);
      if (over) {
        e.tool_session.reset();  // its tool processes and directory go with it
        refill(slot);
        if (!in_slot[slot]) --live;
      } else {
        ++l.round;
        begin_turn(slot, /*fresh=*/false);
      }
    }
  }
  return episodes;
}

std::vector<Episode> RolloutEngine::run(const Policy& policy, const std::vector<std::vector<int64_t>>& prompts,
                                        const RolloutOptions& options) const {
  std::vector<Episode> episodes = start_episodes(prompts, options);
  std::vector<size_t> active;
  for (size_t i = 0; i < prompts.size(); ++i) active.push_back(i);
  for (int64_t round = 0; round <= options.max_tool_calls && !active.empty(); ++round) {
    std::vector<std::vector<int64_t>> contexts;
    int64_t longest_budget = 0;
    for (const size_t i : active) {
      contexts.push_back(episodes[i].tokens);
      longest_budget = std::max(longest_budget, options.max_response_tokens - episodes[i].response_tokens);
    }
    model::GenerationOptions generation;
    generation.sampling = options.sampling;
    generation.max_new_tokens = longest_budget;
    generation.stop_token_ids = stop_ids_;
    generation.seed = options.seed * 1000003ull + static_cast<uint64_t>(round);
    generation.record_routing = options.record_routing;
    if (options.record_routing && round > 0)  // the earlier rounds' tokens keep their routing
      for (const size_t i : active) generation.prompt_experts.push_back(episodes[i].experts_SMK);
    for (const size_t i : active)
      if (!options.row_seeds.empty()) generation.row_seeds.push_back(turn_seed(options, i, round));
    const auto generated = policy(contexts, generation);
    check(generated.size() == active.size(), "rollout: the policy returned ", generated.size(), " rows for ",
          active.size(), " contexts");
    std::vector<size_t> still_active;
    for (size_t r = 0; r < active.size(); ++r) {
      Episode& e = episodes[active[r]];
      const bool over = absorb(e, generated[r], options.max_response_tokens - e.response_tokens,
                               round == options.max_tool_calls, options.max_tool_calls);
      if (over) e.tool_session.reset();  // its tool processes and directory go with it
      if (!over) still_active.push_back(active[r]);
    }
    active = std::move(still_active);
  }
  for (auto& e : episodes) e.tool_session.reset();
  return episodes;
}

}  // namespace k2f::train::rl
