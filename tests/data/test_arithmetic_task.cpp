// data/arithmetic_task.cpp: seeded problems with exact answers, a held-out split disjoint from
// training by construction, the answer checker, and SFT conversations that the K2 chat template
// renders with the loss on the assistant's tokens only.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "data/arithmetic_task.h"
#include "data/chat_template.h"
#include "data/expression.h"
#include "test_util.h"

namespace k2f::data {
namespace {

const Tokenizer& tokenizer() {
  static const Tokenizer t = Tokenizer::load(std::string(K2F_SOURCE_DIR) + "/assets/tokenizer");
  return t;
}

TEST(ArithmeticTask, SeededProblemsHaveExactAnswersAndDisjointSplits) {
  const auto a = make_arithmetic_problems(3, 200, TaskSplit::train);
  const auto b = make_arithmetic_problems(3, 200, TaskSplit::train);
  const auto held = make_arithmetic_problems(3, 200, TaskSplit::heldout);
  ASSERT_EQ(a.size(), 200u);
  std::set<std::string> train_set;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].expression, b[i].expression);
    EXPECT_EQ(a[i].answer, evaluate_expression(a[i].expression));
    EXPECT_FALSE(is_heldout(a[i].expression));
    train_set.insert(a[i].expression);
  }
  EXPECT_EQ(train_set.size(), 200u);  // distinct
  for (const auto& p : held) {
    EXPECT_TRUE(is_heldout(p.expression));
    EXPECT_EQ(train_set.count(p.expression), 0u);
  }
  EXPECT_NE(make_arithmetic_problems(4, 1, TaskSplit::train)[0].expression, a[0].expression);
  EXPECT_EQ(ArithmeticProblem({"(17 + 5) * 3", 66}).question(), "Compute (17 + 5) * 3.");
}

TEST(ArithmeticTask, AnswerChecker) {
  const ArithmeticProblem p{"(17 + 5) * 3", 66};
  EXPECT_TRUE(answer_is_correct("Answer: 66", p));
  EXPECT_TRUE(answer_is_correct("  Answer: 66\n", p));
  EXPECT_FALSE(answer_is_correct("Answer: 67", p));
  EXPECT_FALSE(answer_is_correct("66", p));
  EXPECT_FALSE(answer_is_correct("Answer: 66.", p));
  EXPECT_FALSE(answer_is_correct("Answer: ", p));
  EXPECT_EQ(extract_answer("Answer: -12"), -12);
  EXPECT_FALSE(extract_answer("Answer: 1 2").has_value());
}

TEST(ArithmeticTask, ConversationsRenderWithTheLossOnTheAssistantOnly) {
  const ChatTemplate chat(tokenizer());
  const ArithmeticProblem p{"(17 + 5) * 3", 66};
  const auto with_tool = make_think_conversation(p, true);
  const auto messages = with_tool["messages"];
  ASSERT_EQ(messages.size(), 4u);
  EXPECT_EQ(messages[1]["tool_calls"][0]["function"]["arguments"], "{\"expression\":\"(17 + 5) * 3\"}");
  EXPECT_EQ(messages[2]["content"], "66");
  EXPECT_EQ(messages[3]["content"], "Answer: 66");
  const auto rendered = chat.render(parse_chat_record(with_tool));
  // The tool result "66" is in the context but never a target: the masked text is the model's.
  std::vector<int32_t> masked, unmasked;
  for (size_t i = 0; i < rendered.tokens.size(); ++i)
    (rendered.loss_mask[i] ? masked : unmasked).push_back(rendered.tokens[i]);
  const std::string target_text = tokenizer().decode(masked);
  EXPECT_NE(target_text.find("I will use the calculator."), std::string::npos);
  EXPECT_NE(target_text.find("{\"expression\":\"(17 + 5) * 3\"}"), std::string::npos);
  EXPECT_NE(target_text.find("The calculator returned 66."), std::string::npos);
  EXPECT_EQ(tokenizer().decode(unmasked).find("Answer"), std::string::npos);
  EXPECT_NE(tokenizer().decode(unmasked).find("## Return of functions.calculator:0\n66"), std::string::npos);

  const auto direct = make_think_conversation(p, false)["messages"];
  ASSERT_EQ(direct.size(), 2u);
  EXPECT_EQ(direct[1]["reasoning_content"], "17 + 5 = 22. 22 * 3 = 66.");
  EXPECT_EQ(make_think_conversation({"12 * 7 - 30", 54}, false)["messages"][1]["reasoning_content"],
            "12 * 7 = 84. 84 - 30 = 54.");
}

TEST(ArithmeticTask, JsonlHasTheRequestedToolShare) {
  testing::ScratchDir dir("synth");
  ThinkSynthOptions options;
  options.out = dir / "think.jsonl";
  options.count = 400;
  options.seed = 5;
  options.tool_fraction = 0.25;
  const int64_t with_tool = write_think_jsonl(options);
  EXPECT_GT(with_tool, 60);
  EXPECT_LT(with_tool, 140);
  std::ifstream in(options.out);
  std::string line;
  int64_t lines = 0, tool_lines = 0;
  while (std::getline(in, line)) {
    const auto record = nlohmann::ordered_json::parse(line);
    parse_chat_record(record);  // valid for the template
    tool_lines += record["messages"].size() == 4 ? 1 : 0;
    ++lines;
  }
  EXPECT_EQ(lines, 400);
  EXPECT_EQ(tool_lines, with_tool);
  options.tool_fraction = 1.5;
  testing::expect_error([&] { write_think_jsonl(options); }, {"--tool-fraction (1.5) must be in [0, 1]"});
}

}  // namespace
}  // namespace k2f::data
