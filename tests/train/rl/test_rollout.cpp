// train/rl/rollout.cpp and turn_parser.cpp with a scripted policy (the model's turns written by
// hand): a tool-using episode equals the K2 template's rendering of the same conversation token
// for token, only sampled tokens are marked for the loss (never the tool result), every tool
// failure is shown to the model and the episode goes on, budgets end episodes, and the routing
// the sampler records follows the episode's tokens through a tool round; a program tool keeps one
// process and directory per episode, gone when the episode ends; with the model as the policy, an
// episode stops at the model's positions. Continuous batching (a scripted TurnDecoder, then the
// model's SlotDecoder) gives every episode what it gets alone and hands slots on as episodes end.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "data/chat_template.h"
#include "model/kimi_model.h"
#include "model/routing_replay.h"
#include "model/tiny_config.h"
#include "base/sandbox.h"
#include "test_util.h"
#include "train/rl/rollout.h"
#include "train/rl/turn_parser.h"

namespace k2f::train::rl {
namespace {

using Tokens = std::vector<int64_t>;
using OJson = nlohmann::ordered_json;

const data::Tokenizer& tokenizer() {
  static const data::Tokenizer t = data::Tokenizer::load(std::string(K2F_SOURCE_DIR) + "/assets/tokenizer");
  return t;
}

struct Fixture {
  data::ChatTemplate chat{tokenizer()};
  ToolRunner tools;
  TurnTokens ids = TurnTokens::from(tokenizer());
  Fixture() { tools.add(std::make_shared<CalculatorTool>()); }

  void text(Tokens& out, const std::string& s) const {
    for (int32_t id : tokenizer().encode(s)) out.push_back(id);
  }
  // <think>R</think>C [section (call ID args)... section_end] or im_end
  Tokens turn(const std::string& reasoning, const std::string& content,
              const std::vector<std::pair<std::string, std::string>>& calls) const {
    Tokens t = {ids.think_begin};
    text(t, reasoning);
    t.push_back(ids.think_end);
    text(t, content);
    if (calls.empty()) {
      t.push_back(ids.im_end);
      return t;
    }
    t.push_back(ids.section_begin);
    for (const auto& [id, args] : calls) {
      t.push_back(ids.call_begin);
      text(t, id);
      t.push_back(ids.argument_begin);
      text(t, args);
      t.push_back(ids.call_end);
    }
    t.push_back(ids.section_end);
    return t;
  }
  Tokens prompt() const {
    const auto ids32 = chat.render_generation_prompt(OJson::array({{{"role", "user"}, {"content", "Compute (17 + 5) * 3."}}}),
                                                     tools_json());
    return {ids32.begin(), ids32.end()};
  }
  static OJson tools_json() {
    return OJson::array({{{"type", "function"}, {"function", {{"name", "calculator"}}}}});
  }
};

// Plays script[round][row], cut at max_new_tokens, stopping like model::generate.
Policy scripted(std::vector<std::vector<Tokens>> script, int* rounds = nullptr) {
  auto round = std::make_shared<size_t>(0);
  return [script, round, rounds](const std::vector<Tokens>& contexts, const model::GenerationOptions& o) {
    std::vector<model::GeneratedSequence> out;
    for (size_t r = 0; r < contexts.size(); ++r) {
      const Tokens& planned = script.at(*round).at(r);
      model::GeneratedSequence g;
      for (const int64_t id : planned) {
        if (static_cast<int64_t>(g.tokens.size()) == o.max_new_tokens) break;
        g.tokens.push_back(id);
        g.model_logprobs.push_back(-0.25);
        g.sampling_logprobs.push_back(-0.25);
        if (std::find(o.stop_token_ids.begin(), o.stop_token_ids.end(), id) != o.stop_token_ids.end()) {
          g.finish = model::FinishReason::kStop;
          break;
        }
      }
      out.push_back(g);
    }
    ++*round;
    if (rounds != nullptr) *rounds = static_cast<int>(*round);
    return out;
  };
}

TEST(TurnParser, ReadsThinkingContentAndCalls) {
  Fixture f;
  const auto t = f.turn("Two steps.", "", {{"functions.calculator:0", "{\"expression\": \"2 * 3\"}"}});
  const auto p = parse_assistant_turn(t, f.ids, tokenizer());
  EXPECT_TRUE(p.think_ok);
  EXPECT_EQ(p.reasoning, "Two steps.");
  EXPECT_EQ(p.content, "");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].id, "functions.calculator:0");
  EXPECT_EQ(p.calls[0].arguments, "{\"expression\": \"2 * 3\"}");
  EXPECT_TRUE(p.calls[0].problem.empty());
  EXPECT_TRUE(p.section_closed);

  const auto answer = parse_assistant_turn(f.turn("ok", "Answer: 6", {}), f.ids, tokenizer());
  EXPECT_TRUE(answer.think_ok);
  EXPECT_EQ(answer.content, "Answer: 6");
  EXPECT_FALSE(answer.has_tool_section);

  Tokens unclosed = {f.ids.think_begin};
  f.text(unclosed, "thinking forever");
  EXPECT_FALSE(parse_assistant_turn(unclosed, f.ids, tokenizer()).think_ok);

  Tokens no_argument = {f.ids.think_begin, f.ids.think_end, f.ids.section_begin, f.ids.call_begin};
  f.text(no_argument, "functions.calculator:0");
  no_argument.insert(no_argument.end(), {f.ids.call_end, f.ids.section_end});
  const auto broken = parse_assistant_turn(no_argument, f.ids, tokenizer());
  ASSERT_EQ(broken.calls.size(), 1u);
  EXPECT_EQ(broken.calls[0].problem, "the call has no <|tool_call_argument_begin|>");

  const Tokens empty_section = {f.ids.think_begin, f.ids.think_end, f.ids.section_begin, f.ids.section_end};
  EXPECT_EQ(parse_assistant_turn(empty_section, f.ids, tokenizer()).calls.at(0).problem, "empty tool-call section");
}

// A user's tool program that counts its calls in a file of its working directory: each episode
// sees 1 then 2 (its own process and directory, kept across its rounds), and after the rollout no
// process or directory of it remains.
TEST(Rollout, ProgramToolsKeepOneProcessAndDirectoryPerEpisodeAndGoWithIt) {
  namespace fs = std::filesystem;
  testing::ScratchDir dir("rollout-program-tool");
  std::ofstream(dir / "counter.py") << "import json, os, sys\n"
                                       "for line in sys.stdin:\n"
                                       "    n = int(open('count').read()) + 1 if os.path.exists('count') else 1\n"
                                       "    open('count', 'w').write(str(n))\n"
                                       "    print(json.dumps({'content': '%d in %s' % (n, os.path.basename(os.getcwd()))}), flush=True)\n";
  std::ofstream(dir / "tools.json") << R"([{"type": "function", "function": {"name": "counter", "parameters":
      {"type": "object", "properties": {}}}, "command": ["python3", "counter.py"]}])";
  fs::create_directories(dir / "work");
  ToolLimits limits;
  limits.work_root = dir / "work";
  limits.timeout_s = 10;
  Fixture f;
  ToolRunner tools(limits);
  for (auto& tool : read_tool_declarations(dir / "tools.json")) tools.add_program(std::move(tool));
  const RolloutEngine engine(tokenizer(), f.chat, tools);
  const Tokens first = f.turn("Count.", "", {{"functions.counter:0", "{}"}});
  const Tokens second = f.turn("Again.", "", {{"functions.counter:1", "{}"}});
  const Tokens answer = f.turn("Done.", "Answer: 2", {});
  RolloutOptions options;
  options.max_response_tokens = 300;
  const auto episodes = engine.run(scripted({{first, first}, {second, second}, {answer, answer}}),
                                   {f.prompt(), f.prompt()}, options);
  ASSERT_EQ(episodes.size(), 2u);
  std::set<std::string> directories;
  for (const Episode& e : episodes) {
    EXPECT_EQ(e.final_content, "Answer: 2");
    EXPECT_EQ(e.tool_stats.count(ToolEvent::ok), 2);
    ASSERT_EQ(e.tool_messages.size(), 2u);
    EXPECT_EQ(e.tool_messages[0].substr(0, 5), "1 in ") << e.tool_messages[0];
    EXPECT_EQ(e.tool_messages[1], "2 in " + e.tool_messages[0].substr(5));
    directories.insert(e.tool_messages[0].substr(5));
    EXPECT_EQ(e.tool_session, nullptr);
  }
  EXPECT_EQ(directories.size(), 2u) << "each episode has its own directory";
  EXPECT_TRUE(live_descendants(::getpid()).empty());
  size_t left = 0;
  for (const auto& root : fs::directory_iterator(dir / "work"))
    left += static_cast<size_t>(std::distance(fs::directory_iterator(root.path()), fs::directory_iterator()));
  EXPECT_EQ(left, 0u) << "episode directories outlived their episodes";
}

TEST(Rollout, ToolEpisodeEqualsTheTemplateAndOnlySampledTokensAreTrained) {
  Fixture f;
  const RolloutEngine engine(tokenizer(), f.chat, f.tools);
  const std::string args = "{\"expression\": \"(17 + 5) * 3\"}";
  const Tokens call = f.turn("Use the tool.", "", {{"functions.calculator:0", args}});
  const Tokens answer = f.turn("It returned 66.", "Answer: 66", {});
  RolloutOptions options;
  options.max_response_tokens = 200;
  const auto episodes = engine.run(scripted({{call}, {answer}}), {f.prompt()}, options);
  ASSERT_EQ(episodes.size(), 1u);
  const Episode& e = episodes[0];
  EXPECT_FALSE(e.truncated);
  EXPECT_EQ(e.final_content, "Answer: 66");
  EXPECT_EQ(e.num_tool_calls, 1);
  EXPECT_EQ(e.tool_stats.count(ToolEvent::ok), 1);
  EXPECT_EQ(e.response_tokens, static_cast<int64_t>(call.size() + answer.size()));

  const OJson conversation = OJson::array(
      {{{"role", "user"}, {"content", "Compute (17 + 5) * 3."}},
       {{"role", "assistant"},
        {"reasoning_content", "Use the tool."},
        {"content", ""},
        {"tool_calls", OJson::array({{{"id", "functions.calculator:0"},
                                      {"type", "function"},
                                      {"function", {{"name", "calculator"}, {"arguments", args}}}}})}},
       {{"role", "tool"}, {"tool_call_id", "functions.calculator:0"}, {"name", "calculator"}, {"content", "66"}},
       {{"role", "assistant"}, {"reasoning_content", "It returned 66."}, {"content", "Answer: 66"}}});
  const auto rendered = f.chat.render(conversation, Fixture::tools_json());
  ASSERT_EQ(e.tokens, Tokens(rendered.tokens.begin(), rendered.tokens.end()));
  // The loss mask of the rendering, except the <|im_end|> the rollout appended after the section.
  const size_t closing = e.prompt_length + call.size();
  EXPECT_EQ(e.tokens[closing], f.ids.im_end);
  for (size_t i = 0; i < e.tokens.size(); ++i) {
    EXPECT_EQ(e.sampled[i], i == closing ? 1 - rendered.loss_mask[i] : rendered.loss_mask[i]) << i;
    EXPECT_EQ(e.sampler_logprobs[i], e.sampled[i] ? -0.25 : 0.0);
  }
}

// A policy that records routing as model::generate does: one [S, 1, 1] row per context token and
// new token, the context's given routing kept, every other fed token marked with 10 * round + 1,
// and -1 for the last new token (never fed back). Keeps each round's prompt_experts.
Policy recording(Policy inner, std::vector<std::vector<torch::Tensor>>* given) {
  auto round = std::make_shared<int64_t>(0);
  return [inner, given, round](const std::vector<Tokens>& contexts, const model::GenerationOptions& o) {
    EXPECT_TRUE(o.record_routing);
    given->push_back(o.prompt_experts);
    auto out = inner(contexts, o);
    for (size_t r = 0; r < out.size(); ++r) {
      const int64_t P = static_cast<int64_t>(contexts[r].size()), S = P + static_cast<int64_t>(out[r].tokens.size());
      auto experts = torch::full({S, 1, 1}, 10 * *round + 1, model::kExpertIdDtype);
      if (!o.prompt_experts.empty()) {
        const auto& prompt = o.prompt_experts[r];
        experts.narrow(0, 0, P).copy_(torch::where(prompt >= 0, prompt, experts.narrow(0, 0, P)));
      }
      experts[S - 1].fill_(-1);
      out[r].experts_SMK = experts;
    }
    ++*round;
    return out;
  };
}

TEST(Rollout, RecordedRoutingFollowsTheEpisodeThroughAToolRound) {
  Fixture f;
  const RolloutEngine engine(tokenizer(), f.chat, f.tools);
  const Tokens call = f.turn("Use the tool.", "", {{"functions.calculator:0", "{\"expression\": \"2 * 3\"}"}});
  const Tokens answer = f.turn("It returned 6.", "Answer: 6", {});
  RolloutOptions options;
  options.max_response_tokens = 200;
  options.record_routing = true;
  std::vector<std::vector<torch::Tensor>> given;
  const Episode e = engine.run(recording(scripted({{call}, {answer}}), &given), {f.prompt()}, options).at(0);
  ASSERT_EQ(given.size(), 2u);
  EXPECT_TRUE(given[0].empty());  // the first round's prompt routes freely
  ASSERT_EQ(given[1].size(), 1u);
  ASSERT_EQ(e.experts_SMK.size(0), static_cast<int64_t>(e.tokens.size()));
  // Round 1 fed the prompt and the call but its last token; round 2 (11) the rest but the answer's
  // last token; <|im_end|>, the tool message and the next header came between them.
  const int64_t P = e.prompt_length, C = static_cast<int64_t>(call.size());
  const int64_t S = e.experts_SMK.size(0);
  for (int64_t i = 0; i < S; ++i) {
    const int64_t expected = i < P + C - 1 ? 1 : i == S - 1 ? -1 : 11;
    EXPECT_EQ(e.experts_SMK[i][0][0].item<int64_t>(), expected) << "token " << i;
  }
  // Round 2 was handed round 1's routing, the tokens round 1 never fed marked free.
  const auto& handed = given[1][0];
  ASSERT_EQ(handed.size(0), static_cast<int64_t>(e.tokens.size() - answer.size()));
  for (int64_t i = 0; i < handed.size(0); ++i)
    EXPECT_EQ(handed[i][0][0].item<int64_t>(), i < P + C - 1 ? 1 : -1) << "token " << i;
}

TEST(Rollout, EveryToolFailureIsShownCountedAndTheEpisodeContinues) {
  Fixture f;
  const RolloutEngine engine(tokenizer(), f.chat, f.tools);
  const Tokens answer = f.turn("Then I answer.", "Answer: 66", {});
  Tokens unclosed_call = {f.ids.think_begin, f.ids.think_end, f.ids.section_begin, f.ids.call_begin};
  f.text(unclosed_call, "functions.calculator:0");
  unclosed_call.push_back(f.ids.section_end);
  const std::vector<std::tuple<Tokens, ToolEvent, std::string>> cases = {
      {f.turn("", "", {{"functions.calculator:0", "{\"expression\": "}}), ToolEvent::malformed, "not valid JSON"},
      {unclosed_call, ToolEvent::malformed, "never closed"},
      {f.turn("", "", {{"functions.search:0", "{}"}}), ToolEvent::unknown_tool, "unknown tool \"search\""},
      {f.turn("", "", {{"functions.calculator:0", "{\"expression\": \"1 / 0\"}"}}), ToolEvent::tool_error,
       "division by zero"},
  };
  for (const auto& [turn, event, fragment] : cases) {
    RolloutOptions options;
    options.max_response_tokens = 200;
    const auto e = engine.run(scripted({{turn}, {answer}}), {f.prompt()}, options).at(0);
    EXPECT_EQ(e.tool_stats.count(event), 1) << fragment;
    EXPECT_EQ(e.tool_stats.calls, 1);
    ASSERT_EQ(e.tool_messages.size(), 1u);
    EXPECT_NE(e.tool_messages[0].find(fragment), std::string::npos) << e.tool_messages[0];
    // The model sees it: the message is in the context before the answering turn, unsampled.
    std::vector<int32_t> context;
    for (size_t i = 0; i < e.tokens.size(); ++i)
      if (!e.sampled[i]) context.push_back(static_cast<int32_t>(e.tokens[i]));
    EXPECT_NE(tokenizer().decode(context).find(fragment), std::string::npos);
    EXPECT_FALSE(e.truncated);
    EXPECT_EQ(e.final_content, "Answer: 66");
  }
}

TEST(Rollout, BudgetsEndEpisodes) {
  Fixture f;
  const RolloutEngine engine(tokenizer(), f.chat, f.tools);
  const Tokens call = f.turn("", "", {{"functions.calculator:0", "{\"expression\": \"1 + 1\"}"}});
  const Tokens answer = f.turn("A long thought before the answer.", "Answer: 2", {});
  RolloutOptions options;
  options.max_response_tokens = static_cast<int64_t>(call.size()) + 3;  // the answer does not fit
  int rounds = 0;
  auto e = engine.run(scripted({{call}, {answer}}, &rounds), {f.prompt()}, options).at(0);
  EXPECT_TRUE(e.truncated);
  EXPECT_EQ(e.response_tokens, options.max_response_tokens);
  EXPECT_EQ(e.final_content, "");
  EXPECT_EQ(rounds, 2);

  // One call allowed: a second tool turn leaves no round to answer in.
  options.max_response_tokens = 500;
  options.max_tool_calls = 1;
  e = engine.run(scripted({{call}, {call}, {answer}}, &rounds), {f.prompt()}, options).at(0);
  EXPECT_TRUE(e.truncated);
  EXPECT_EQ(rounds, 2);
  EXPECT_EQ(e.num_tool_calls, 2);
  EXPECT_EQ(e.tool_stats.count(ToolEvent::over_limit), 1);
}

// A TurnDecoder playing script[episode][turn] (episodes numbered by their fresh begins, as
// run_continuous fills slots in order), cut at the budget and stop tokens like model::generate.
// A turn of n tokens takes n decode steps, so turns of different lengths end at different times.
class ScriptedDecoder : public TurnDecoder {
 public:
  ScriptedDecoder(int64_t slots, std::vector<std::vector<Tokens>> script, std::vector<int64_t> stops)
      : slots_(static_cast<size_t>(slots)), script_(std::move(script)), stops_(std::move(stops)),
        seen_(script_.size()) {}
  int64_t slots() const override { return static_cast<int64_t>(slots_.size()); }
  void begin_turn(int64_t slot, const Tokens& tokens, bool fresh, int64_t max_new_tokens, uint64_t) override {
    Slot& s = slots_.at(static_cast<size_t>(slot));
    EXPECT_FALSE(s.running) << "slot " << slot;
    if (fresh) {
      s.episode = next_episode_++;
      s.turn = 0;
      ++fresh_begins[slot];
    } else {
      ++s.turn;
    }
    auto& seen = seen_.at(s.episode);
    seen.insert(seen.end(), tokens.begin(), tokens.end());
    s.out = model::GeneratedSequence{};
    for (const int64_t id : script_.at(s.episode).at(static_cast<size_t>(s.turn))) {
      if (static_cast<int64_t>(s.out.tokens.size()) == max_new_tokens) break;
      s.out.tokens.push_back(id);
      s.out.model_logprobs.push_back(-0.25);
      s.out.sampling_logprobs.push_back(-0.25);
      if (std::find(stops_.begin(), stops_.end(), id) != stops_.end()) {
        s.out.finish = model::FinishReason::kStop;
        break;
      }
    }
    s.left = static_cast<int64_t>(s.out.tokens.size());
    s.running = true;
    int64_t running = 0;
    for (const Slot& other : slots_) running += other.running;
    most_running = std::max(most_running, running);
  }
  std::vector<std::pair<int64_t, model::GeneratedSequence>> decode_until_a_turn_ends() override {
    int64_t step = -1;
    for (const Slot& s : slots_)
      if (s.running && (step < 0 || s.left < step)) step = s.left;
    std::vector<std::pair<int64_t, model::GeneratedSequence>> ended;
    if (step < 0) return ended;
    for (size_t b = 0; b < slots_.size(); ++b) {
      Slot& s = slots_[b];
      if (!s.running) continue;
      s.left -= step;
      if (s.left > 0) continue;
      s.running = false;
      auto& seen = seen_.at(s.episode);
      if (!s.out.tokens.empty()) seen.insert(seen.end(), s.out.tokens.begin(), s.out.tokens.end() - 1);
      ended.emplace_back(static_cast<int64_t>(b), std::move(s.out));
    }
    return ended;
  }
  // Per episode: every token it was handed or fed back (each turn's last token is not), in order.
  const std::vector<Tokens>& seen() const { return seen_; }
  std::map<int64_t, int> fresh_begins;
  int64_t most_running = 0;

 private:
  struct Slot {
    bool running = false;
    size_t episode = 0;
    int64_t turn = 0, left = 0;
    model::GeneratedSequence out;
  };
  std::vector<Slot> slots_;
  std::vector<std::vector<Tokens>> script_;
  std::vector<int64_t> stops_;
  std::vector<Tokens> seen_;
  size_t next_episode_ = 0;
};

// Five episodes of 0 to 3 tool rounds through 2 slots: each equals the same episode rolled out
// alone (rounds batching), the slots were handed on as episodes ended, and every token an episode
// holds reached the decoder exactly once (nothing prefilled twice).
TEST(Rollout, ContinuousBatchingGivesEachEpisodeWhatItGetsAloneAndHandsSlotsOn) {
  Fixture f;
  const RolloutEngine engine(tokenizer(), f.chat, f.tools);
  const auto call = [&](int index, const std::string& expression) {
    return f.turn("Tool.", "", {{"functions.calculator:" + std::to_string(index), "{\"expression\": \"" + expression + "\"}"}});
  };
  const std::vector<std::vector<Tokens>> script = {
      {call(0, "1 + 1"), f.turn("Two.", "Answer: 2", {})},
      {call(0, "2 * 3"), call(1, "6 * 7"), call(2, "42 - 2"), f.turn("Forty.", "Answer: 40", {})},
      {f.turn("No tool needed here at all.", "Answer: 5", {})},
      {call(0, "9 - 3"), call(1, "6 / 0"), f.turn("Broken.", "Answer: 6", {})},
      {call(0, "100 + 1"), f.turn("", "Answer: 101", {})},
  };
  RolloutOptions options;
  options.max_response_tokens = 400;
  options.max_tool_calls = 5;
  const std::vector<Tokens> prompts(script.size(), f.prompt());
  ScriptedDecoder decoder(2, script, engine.stop_ids());
  const auto together = engine.run_continuous(decoder, prompts, options);
  ASSERT_EQ(together.size(), script.size());
  for (size_t i = 0; i < script.size(); ++i) {
    std::vector<std::vector<Tokens>> rounds;
    for (const auto& turn : script[i]) rounds.push_back({turn});
    const Episode alone = engine.run(scripted(rounds), {f.prompt()}, options).at(0);
    const Episode& e = together[i];
    EXPECT_EQ(e.tokens, alone.tokens) << "episode " << i;
    EXPECT_EQ(e.sampled, alone.sampled) << "episode " << i;
    EXPECT_EQ(e.tool_messages, alone.tool_messages) << "episode " << i;
    EXPECT_EQ(e.num_tool_calls, static_cast<int64_t>(script[i].size()) - 1);
    EXPECT_EQ(e.final_content, alone.final_content);
    EXPECT_FALSE(e.truncated);
    EXPECT_EQ(decoder.seen()[i], Tokens(e.tokens.begin(), e.tokens.end() - 1))
        << "episode " << i << ": the decoder was handed other tokens";
  }
  EXPECT_EQ(together[3].tool_stats.count(ToolEvent::tool_error), 1);
  EXPECT_EQ(decoder.most_running, 2);
  EXPECT_EQ(decoder.fresh_begins[0] + decoder.fresh_begins[1], 5);
  EXPECT_GE(std::min(decoder.fresh_begins[0], decoder.fresh_begins[1]), 2) << "both slots were refilled";
}

// model_policy with a real (tiny, random) model: an episode never grows past the model's
// max_position_embeddings; the turn that reaches it ends "length" and the episode is truncated.
TEST(Rollout, ModelPolicyEndsEpisodesAtTheModelsPositions) {
  Fixture f;
  const RolloutEngine engine(tokenizer(), f.chat, f.tools);
  const Tokens prompt = f.prompt();
  auto config = testing::tiny_config();
  config.vocab_size = tokenizer().vocab_size();
  RolloutOptions options;
  options.max_response_tokens = 100;
  options.sampling.temperature = 0;
  for (const int64_t room : {4, 0}) {
    config.max_position_embeddings = static_cast<int64_t>(prompt.size()) + room;
    model::KimiForCausalLM lm(config);
    model::init_weights(lm, 1);
    for (const auto batching : {RolloutBatching::rounds, RolloutBatching::continuous}) {
      options.batching = batching;
      const Episode e = engine.run_model(lm, {prompt}, options).at(0);
      EXPECT_TRUE(e.truncated) << "room " << room << ", " << rollout_batching_name(batching);
      EXPECT_EQ(e.response_tokens, room);
      EXPECT_EQ(static_cast<int64_t>(e.tokens.size()), config.max_position_embeddings);
    }
  }
}

// The model's own decoder: with episode seeds, continuous batching through 3 slots samples the
// tokens rounds batching samples (all 8 episodes in one batch) and what each episode samples alone.
TEST(Rollout, ContinuousBatchingOfTheModelSamplesWhatRoundsBatchingAndEachEpisodeAloneSample) {
  Fixture f;
  const RolloutEngine engine(tokenizer(), f.chat, f.tools);
  auto config = testing::tiny_config();
  config.vocab_size = tokenizer().vocab_size();
  model::KimiForCausalLM lm(config);
  model::init_weights(lm, 5);
  lm->eval();
  RolloutOptions options;
  options.max_response_tokens = 24;
  options.sampling.temperature = 1.0;
  std::vector<Tokens> prompts;
  for (int i = 0; i < 8; ++i) {
    Tokens p = f.prompt();
    f.text(p, std::string(static_cast<size_t>(i), 'x'));  // prompts of different lengths
    prompts.push_back(p);
    options.row_seeds.push_back(40 + static_cast<uint64_t>(i));
  }
  options.batching = RolloutBatching::rounds;
  const auto rounds = engine.run_model(lm, prompts, options);
  options.batching = RolloutBatching::continuous;
  options.slots = 3;
  const auto continuous = engine.run_model(lm, prompts, options);
  for (size_t i = 0; i < prompts.size(); ++i) {
    RolloutOptions one = options;
    one.row_seeds = {options.row_seeds[i]};
    const auto alone = engine.run_model(lm, {prompts[i]}, one).at(0);
    EXPECT_EQ(continuous[i].tokens, rounds[i].tokens) << "episode " << i;
    EXPECT_EQ(continuous[i].tokens, alone.tokens) << "episode " << i;
    for (size_t t = 0; t < continuous[i].tokens.size(); ++t)
      EXPECT_NEAR(continuous[i].sampler_logprobs[t], rounds[i].sampler_logprobs[t], 1e-5) << "episode " << i;
  }
}

}  // namespace
}  // namespace k2f::train::rl
