// train/rl/key_chain_env.cpp and the lookup tool: an episode that follows a chain of 256 keys, one
// lookup call per turn on the last result, runs to completion through continuous batching (a
// policy that reads each result from its context, as the model must), is judged correct with
// exactly 256 calls, and the K2 rule keeps every turn's reasoning in the context; a wrong key is
// shown to the model as the tool's error; the answer is read as text.
#include <gtest/gtest.h>

#include <regex>

#include "data/chat_template.h"
#include "data/key_chain_task.h"
#include "train/rl/key_chain_env.h"
#include "train/rl/rollout.h"
#include "train/rl/turn_parser.h"

namespace k2f::train::rl {
namespace {

using Tokens = std::vector<int64_t>;

const data::Tokenizer& chain_tokenizer() {
  static const data::Tokenizer t = data::Tokenizer::load(std::string(K2F_SOURCE_DIR) + "/assets/tokenizer");
  return t;
}

// Per slot, reads the last key (or "done VVVV") in what it was handed and writes the next turn:
// a thought naming the key, then the lookup call on it, or the answer. `typo_at`: the call index
// at which it miscopies the key once (then reads the error and retries the right key).
class ChainFollower : public TurnDecoder {
 public:
  ChainFollower(int64_t slots, const TurnTokens& ids, int64_t typo_at = -1)
      : slots_(static_cast<size_t>(slots)), ids_(ids), typo_at_(typo_at) {}
  int64_t slots() const override { return static_cast<int64_t>(slots_.size()); }
  void begin_turn(int64_t slot, const Tokens& tokens, bool fresh, int64_t max_new_tokens, uint64_t) override {
    Slot& s = slots_.at(static_cast<size_t>(slot));
    if (fresh) s = Slot{};
    s.context.insert(s.context.end(), tokens.begin(), tokens.end());
    const std::string text = chain_tokenizer().decode(std::vector<int32_t>(s.context.begin(), s.context.end()));
    // The start key of the question, each key a lookup returned, or the value it ended with;
    // errors ("error: no such key: K") are not results.
    static const std::regex result(R"(the key (\d{7}),|lookup:\d+\n(\d{7})|lookup:\d+\ndone (\d{4}))");
    std::smatch last;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), result); it != std::sregex_iterator(); ++it) last = *it;
    Tokens turn = {ids_.think_begin};
    const auto say = [&](const std::string& t) {
      for (const int32_t id : chain_tokenizer().encode(t)) turn.push_back(id);
    };
    if (last[3].matched) {
      say("The chain ends.");
      turn.push_back(ids_.think_end);
      say("Answer: " + last[3].str());
      turn.push_back(ids_.im_end);
    } else {
      std::string k = last[1].matched ? last[1].str() : last[2].str();
      if (s.calls == typo_at_ && !s.miscopied) {
        k[0] = k[0] == '9' ? '0' : static_cast<char>(k[0] + 1);  // breaks the check digit
        s.miscopied = true;
      }
      say("Next " + k + ".");
      turn.push_back(ids_.think_end);
      turn.insert(turn.end(), {ids_.section_begin, ids_.call_begin});
      say("functions.lookup:" + std::to_string(s.calls++));
      turn.push_back(ids_.argument_begin);
      say("{\"key\": \"" + k + "\"}");
      turn.insert(turn.end(), {ids_.call_end, ids_.section_end});
    }
    s.out = model::GeneratedSequence{};
    for (const int64_t id : turn) {
      if (static_cast<int64_t>(s.out.tokens.size()) == max_new_tokens) break;
      s.out.tokens.push_back(id);
      s.out.model_logprobs.push_back(-0.1);
      s.out.sampling_logprobs.push_back(-0.1);
    }
    s.out.finish = static_cast<int64_t>(turn.size()) <= max_new_tokens ? model::FinishReason::kStop
                                                                       : model::FinishReason::kLength;
    s.running = true;
  }
  std::vector<std::pair<int64_t, model::GeneratedSequence>> decode_until_a_turn_ends() override {
    std::vector<std::pair<int64_t, model::GeneratedSequence>> ended;
    for (size_t b = 0; b < slots_.size(); ++b) {
      Slot& s = slots_[b];
      if (!s.running) continue;
      s.running = false;
      if (!s.out.tokens.empty()) s.context.insert(s.context.end(), s.out.tokens.begin(), s.out.tokens.end() - 1);
      ended.emplace_back(static_cast<int64_t>(b), std::move(s.out));
    }
    return ended;
  }

 private:
  struct Slot {
    Tokens context;
    int64_t calls = 0;
    bool miscopied = false;
    bool running = false;
    model::GeneratedSequence out;
  };
  std::vector<Slot> slots_;
  TurnTokens ids_;
  int64_t typo_at_;
};

struct ChainFixture {
  data::ChatTemplate chat{chain_tokenizer()};
  ToolRunner tools;
  TurnTokens ids = TurnTokens::from(chain_tokenizer());
  ChainFixture() { tools.add(std::make_shared<LookupTool>()); }
};

// Issue 24 acceptance 2: an episode of 256 sequential tool calls runs to completion.
TEST(KeyChainEnv, AnEpisodeOf256SequentialLookupsRunsToCompletion) {
  ChainFixture f;
  const RolloutEngine engine(chain_tokenizer(), f.chat, f.tools);
  const KeyChainEnvironment env(f.chat, 0, 256);
  const auto tasks = env.heldout_tasks(3);
  ASSERT_EQ(tasks.size(), 3u);
  RolloutOptions options;
  options.max_tool_calls = 300;
  options.max_response_tokens = 256 * 40;
  std::vector<Tokens> prompts;
  for (const auto& task : tasks) prompts.push_back(task.prompt);
  ChainFollower follower(2, f.ids);
  const auto episodes = engine.run_continuous(follower, prompts, options);
  for (size_t i = 0; i < tasks.size(); ++i) {
    const Episode& e = episodes[i];
    EXPECT_EQ(e.num_tool_calls, 256) << "episode " << i;
    EXPECT_EQ(e.tool_stats.count(ToolEvent::ok), 256);
    EXPECT_FALSE(e.truncated);
    EXPECT_EQ(e.final_content, "Answer: " + tasks[i].answer);
    const EpisodeOutcome outcome = env.judge(e, tasks[i]);
    EXPECT_TRUE(outcome.correct) << "episode " << i;
    EXPECT_TRUE(outcome.format_ok);
    EXPECT_EQ(e.tool_messages.back(), "done " + tasks[i].answer);
    EXPECT_GT(e.tokens.size(), 256u * 40);  // far past the tiny models' 4096 positions: the engine has no limit of its own
    // K2 Thinking keeps the reasoning of every turn after the last user message in the context.
    const std::string text = chain_tokenizer().decode(std::vector<int32_t>(e.tokens.begin(), e.tokens.end()));
    const std::string start = tasks[i].question.substr(16, tasks[i].question.find(',') - 16);
    EXPECT_EQ(data::lookups_left(start), std::optional<int64_t>(256));
    EXPECT_NE(text.find("Next " + start + "."), std::string::npos) << text.substr(0, 400);
  }
}

TEST(KeyChainEnv, AMiscopiedKeyIsTheToolsErrorAndTheEpisodeRecovers) {
  ChainFixture f;
  const RolloutEngine engine(chain_tokenizer(), f.chat, f.tools);
  const KeyChainEnvironment env(f.chat, 0, 5);
  const auto task = env.heldout_tasks(1).at(0);
  RolloutOptions options;
  options.max_tool_calls = 10;
  options.max_response_tokens = 1000;
  ChainFollower follower(1, f.ids, /*typo_at=*/2);
  const Episode e = engine.run_continuous(follower, {task.prompt}, options).at(0);
  EXPECT_EQ(e.num_tool_calls, 6);
  EXPECT_EQ(e.tool_stats.count(ToolEvent::tool_error), 1);
  EXPECT_EQ(e.tool_messages[2].rfind("error: no such key: ", 0), 0u) << e.tool_messages[2];
  EXPECT_TRUE(env.judge(e, task).correct);
}

TEST(KeyChainEnv, AnswersAreReadAsText) {
  ChainFixture f;
  const KeyChainEnvironment env(f.chat, 0, 4);
  EXPECT_EQ(env.answer_in(" Answer: 0582 "), std::optional<std::string>("0582"));
  EXPECT_FALSE(env.answer_in("Answer: ").has_value());
  EXPECT_FALSE(env.answer_in("0582").has_value());
  const auto train = env.train_tasks(900);  // more than there are distinct chains: they repeat in order
  ASSERT_EQ(train.size(), 900u);
  EXPECT_EQ(train[800].question, train[0].question);
  EXPECT_NE(train[1].question, train[0].question);
  EXPECT_EQ(env.heldout_tasks(500).size(), 100u);
}

// rl.reward_progress's partial credit: the lookups an episode got right, in order, over the chain.
TEST(KeyChainEnv, ProgressCountsTheLookupsDoneRightInOrder) {
  ChainFixture f;
  const KeyChainEnvironment env(f.chat, 0, 5);
  const auto task = env.heldout_tasks(1).at(0);
  ASSERT_EQ(task.expected_tool_results.size(), 5u);
  EXPECT_EQ(task.expected_tool_results.back(), "done " + task.answer);
  Episode e;
  e.final_content = "Answer: 0000";
  e.tool_messages = {task.expected_tool_results[0], "error: no such key: 1234567", task.expected_tool_results[1],
                     task.expected_tool_results[2]};
  EpisodeOutcome o = env.judge(e, task);
  EXPECT_FALSE(o.correct);
  EXPECT_DOUBLE_EQ(o.progress, 0.6);
  e.tool_messages = task.expected_tool_results;
  e.final_content = "Answer: " + task.answer;
  o = env.judge(e, task);
  EXPECT_TRUE(o.correct);
  EXPECT_DOUBLE_EQ(o.progress, 1.0);
}

}  // namespace
}  // namespace k2f::train::rl
