// train/rl/jsonl_prompt_env.cpp and environment.cpp: user prompts become the same generation
// prompts the chat template renders for those messages, training tasks cycle through the file,
// the reference answer is compared with the final "Answer: X", and every malformed line is an
// error naming the file, the line and the field.
#include <gtest/gtest.h>

#include <fstream>

#include "data/arithmetic_task.h"
#include "data/chat_template.h"
#include "test_util.h"
#include "train/rl/arithmetic_env.h"
#include "train/rl/jsonl_prompt_env.h"

namespace k2f::train::rl {
namespace {

using OJson = nlohmann::ordered_json;
using testing::expect_error;
using testing::ScratchDir;

const data::ChatTemplate& chat() {
  static const data::Tokenizer tokenizer = data::Tokenizer::load(std::string(K2F_SOURCE_DIR) + "/assets/tokenizer");
  static const data::ChatTemplate chat(tokenizer);
  return chat;
}

std::string write_lines(const ScratchDir& dir, const std::string& name, const std::vector<std::string>& lines) {
  const std::string path = dir / name;
  std::ofstream out(path);
  for (const auto& line : lines) out << line << "\n";
  return path;
}

const OJson kCapitalMessages = OJson::parse(
    R"([{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Capital of France?"}])");

TEST(JsonlPromptEnvironment, TasksRenderLikeTheChatTemplateAndCycleThroughTheFile) {
  ScratchDir dir("rl-jsonl");
  const OJson with_tools = {{"messages", OJson::array({{{"role", "user"}, {"content", "Compute 6 * 7."}}})},
                            {"tools", data::calculator_tools_json()},
                            {"answer", 42}};
  const OJson plain = {{"messages", kCapitalMessages}, {"answer", " Paris "}};
  const std::string train = write_lines(dir, "train.jsonl", {with_tools.dump(), "", plain.dump()});
  const std::string eval = write_lines(dir, "eval.jsonl", {plain.dump(), with_tools.dump(), plain.dump()});
  const JsonlPromptEnvironment env(chat(), train, eval);

  const auto tasks = env.train_tasks(5);
  ASSERT_EQ(tasks.size(), 5u);
  const auto expected_tools = chat().render_generation_prompt(with_tools["messages"], with_tools["tools"]);
  const auto expected_plain = chat().render_generation_prompt(kCapitalMessages);
  EXPECT_EQ(tasks[0].prompt, std::vector<int64_t>(expected_tools.begin(), expected_tools.end()));
  EXPECT_EQ(tasks[1].prompt, std::vector<int64_t>(expected_plain.begin(), expected_plain.end()));
  EXPECT_EQ(tasks[0].answer, "42");
  EXPECT_EQ(tasks[1].answer, "Paris");  // trimmed
  EXPECT_EQ(tasks[1].question, "Capital of France?");
  for (size_t i = 2; i < tasks.size(); ++i) EXPECT_EQ(tasks[i].prompt, tasks[i % 2].prompt) << i;

  EXPECT_EQ(env.heldout_tasks(2).size(), 2u);
  EXPECT_EQ(env.heldout_tasks(10).size(), 3u);  // the whole file, never repeated
  EXPECT_TRUE(JsonlPromptEnvironment(chat(), train, "").heldout_tasks(10).empty());
}

TEST(JsonlPromptEnvironment, JudgesTheFinalAnswerLineAgainstTheReference) {
  ScratchDir dir("rl-jsonl-judge");
  const OJson plain = {{"messages", kCapitalMessages}, {"answer", "Paris"}};
  const JsonlPromptEnvironment env(chat(), write_lines(dir, "p.jsonl", {plain.dump()}), "");
  EXPECT_EQ(env.answer_in("  Answer:  Paris \n"), "Paris");
  EXPECT_EQ(env.answer_in("The answer is Paris"), std::nullopt);
  EXPECT_EQ(env.answer_in("Answer: "), std::nullopt);

  const RlTask task = env.train_tasks(1)[0];
  Episode episode;
  episode.final_content = "Answer: Paris";
  episode.response_tokens = 7;
  EpisodeOutcome o = env.judge(episode, task);
  EXPECT_TRUE(o.correct);
  EXPECT_TRUE(o.format_ok);
  EXPECT_EQ(o.length, 7);
  episode.final_content = "Answer: Lyon";
  o = env.judge(episode, task);
  EXPECT_FALSE(o.correct);
  EXPECT_TRUE(o.format_ok);
  episode.final_content = "Answer: Paris";
  episode.truncated = true;
  o = env.judge(episode, task);
  EXPECT_FALSE(o.correct);
  EXPECT_FALSE(o.format_ok);
  EXPECT_TRUE(o.truncated);
}

TEST(JsonlPromptEnvironment, MalformedLinesNameFileLineAndField) {
  ScratchDir dir("rl-jsonl-bad");
  const std::string good = OJson{{"messages", kCapitalMessages}, {"answer", "Paris"}}.dump();
  const auto read = [&](const std::string& name, const std::vector<std::string>& lines) {
    return [&, name, lines] { read_prompt_tasks(chat(), write_lines(dir, name, lines)); };
  };
  expect_error(read("no_answer.jsonl", {good, R"({"messages": [{"role": "user", "content": "hi"}]})"}),
               {"no_answer.jsonl:2", "\"answer\" is missing"});
  expect_error(read("bad_json.jsonl", {"{\"messages\": "}), {"bad_json.jsonl:1", "invalid JSON"});
  expect_error(read("array.jsonl", {"[1, 2]"}), {"array.jsonl:1", "expected an object"});
  expect_error(read("answer_type.jsonl", {R"({"messages": [{"role": "user", "content": "hi"}], "answer": [1]})"}),
               {"answer_type.jsonl:1", "\"answer\" must be a string or a number"});
  expect_error(read("last_turn.jsonl",
                    {R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "answer": "x"})"}),
               {"last_turn.jsonl:1", "the last message must be the user's"});
  expect_error(read("role.jsonl", {R"({"messages": [{"role": "robot", "content": "hi"}], "answer": "x"})"}),
               {"role.jsonl:1", "messages[0]"});
  expect_error(read("empty.jsonl", {"", "  "}), {"empty.jsonl", "no prompts"});
  expect_error([&] { read_prompt_tasks(chat(), dir / "absent.jsonl"); }, {"absent.jsonl", "cannot open"});
  expect_error([&] { read_prompt_tasks(chat(), dir / "prompts.txt"); }, {"prompts.txt", "expected a .jsonl file"});
}

TEST(ArithmeticEnvironment, AnswersAreTheIntegerOfTheAnswerLine) {
  const ArithmeticEnvironment env(chat(), 1);
  const auto tasks = env.train_tasks(3);
  ASSERT_EQ(tasks.size(), 3u);
  const auto problems = data::make_arithmetic_problems(1, 3, data::TaskSplit::train);
  for (size_t i = 0; i < tasks.size(); ++i) {
    EXPECT_EQ(tasks[i].question, problems[i].question());
    EXPECT_EQ(tasks[i].answer, std::to_string(problems[i].answer));
  }
  EXPECT_EQ(env.answer_in("Answer: -12"), "-12");
  EXPECT_EQ(env.answer_in("Answer: twelve"), std::nullopt);
  EXPECT_EQ(env.heldout_tasks(4).size(), 4u);
}

}  // namespace
}  // namespace k2f::train::rl
