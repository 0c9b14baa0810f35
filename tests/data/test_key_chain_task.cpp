// data/key_chain_task.cpp: the lookup is a fixed function (every key's entry is the same on every
// call and machine), refuses what is not a key, chains need exactly their length of lookups and
// end in "done VVVV", the splits are disjoint and seeded, and the SFT conversation calls the
// lookup once per key, each on the last result; bad synth options name the flag.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "data/key_chain_task.h"
#include "test_util.h"

namespace k2f::data {
namespace {

TEST(KeyChainTask, TheLookupIsAFixedFunctionAndRefusesWhatIsNotAKey) {
  // Pinned: SFT data written today must match the tool of tomorrow.
  EXPECT_EQ(look_up_key("0365437"), std::optional<std::string>("1490314"));
  EXPECT_EQ(look_up_key("1490314"), std::optional<std::string>("2328281"));
  EXPECT_EQ(look_up_key("2328281"), std::optional<std::string>("done 9483"));
  EXPECT_EQ(lookups_left("0365437"), std::optional<int64_t>(3));
  EXPECT_EQ(lookups_left("2328281"), std::optional<int64_t>(1));
  for (const char* bad : {"0365438", "1365437", "036543", "03654370", "03654a7", "", "0365437 ", "9999990"})
    EXPECT_FALSE(look_up_key(bad).has_value()) << bad;
  // Every key of a length is a distinct code: 1000 codes x 300 lengths, none read off the key.
  std::set<std::string> keys;
  for (const auto& p : make_key_chain_problems(5, 800, 7, 7, TaskSplit::train)) keys.insert(p.start);
  EXPECT_EQ(keys.size(), 800u);
}

TEST(KeyChainTask, NoPairOfKeyDigitsGivesAwayTheLookupsLeft) {
  // Keys of one length must look like any others: among 800 start keys of length n, every pair of
  // adjacent digits after the first (which is 0-2, as keys lie below 300000) takes nearly all of its
  // 100 values. An affine scramble failed this with one value for digits 5-6 at every length.
  for (const int64_t n : {1, 2, 8, 16, 300}) {
    const auto problems = make_key_chain_problems(11, 800, n, n, TaskSplit::train);
    for (size_t position = 1; position + 1 < 6; ++position) {
      std::set<std::string> pairs;
      for (const auto& p : problems) pairs.insert(p.start.substr(position, 2));
      EXPECT_GE(pairs.size(), 95u) << "length " << n << ", digits " << position + 1 << "-" << position + 2;
    }
  }
}

TEST(KeyChainTask, AChainNeedsExactlyItsLengthOfLookups) {
  for (const int64_t n : {1, 2, 16, 256, 300}) {
    const auto problems = make_key_chain_problems(3, 5, n, n, TaskSplit::train);
    ASSERT_EQ(problems.size(), 5u);
    for (const auto& p : problems) {
      EXPECT_EQ(p.length, n);
      EXPECT_EQ(lookups_left(p.start), std::optional<int64_t>(n));
      const auto results = p.results();
      ASSERT_EQ(static_cast<int64_t>(results.size()), n);
      for (int64_t i = 0; i + 1 < n; ++i)
        EXPECT_EQ(lookups_left(results[static_cast<size_t>(i)]), std::optional<int64_t>(n - 1 - i)) << "lookup " << i;
      EXPECT_EQ(results.back(), "done " + p.answer);
      EXPECT_EQ(p.answer.size(), 4u);
    }
  }
}

TEST(KeyChainTask, SplitsAreDisjointDistinctAndSeeded) {
  const auto train = make_key_chain_problems(0, 400, 1, 8, TaskSplit::train);
  const auto heldout = make_key_chain_problems(0, 100, 1, 8, TaskSplit::heldout);
  std::set<std::string> starts;
  for (const auto& p : train) {
    EXPECT_FALSE(is_heldout_key(p.start));
    EXPECT_GE(p.length, 1);
    EXPECT_LE(p.length, 8);
    starts.insert(p.start);
  }
  EXPECT_EQ(starts.size(), train.size());
  for (const auto& p : heldout) {
    EXPECT_TRUE(is_heldout_key(p.start));
    EXPECT_EQ(starts.count(p.start), 0u);
  }
  EXPECT_EQ(make_key_chain_problems(0, 10, 4, 4, TaskSplit::train)[3].start,
            make_key_chain_problems(0, 10, 4, 4, TaskSplit::train)[3].start);
  EXPECT_NE(make_key_chain_problems(0, 10, 4, 4, TaskSplit::train)[3].start,
            make_key_chain_problems(1, 10, 4, 4, TaskSplit::train)[3].start);
  testing::expect_error([] { make_key_chain_problems(0, 101, 16, 16, TaskSplit::heldout); },
                        {"101 problems", "held-out split holds distinct (100)"});
  testing::expect_error([] { make_key_chain_problems(0, 1, 0, 4, TaskSplit::train); }, {"[0, 4]", "[1, 300]"});
}

TEST(KeyChainTask, TheConversationCallsTheLookupOncePerKeyOnTheLastResult) {
  const auto p = make_key_chain_problems(0, 1, 3, 3, TaskSplit::train).at(0);
  const auto record = make_key_chain_conversation(p);
  EXPECT_EQ(record["tools"][0]["function"]["name"], "lookup");
  const auto& m = record["messages"];
  ASSERT_EQ(m.size(), 1u + 2 * 3 + 1);
  EXPECT_EQ(m[0]["content"], p.question());
  std::string key = p.start;
  for (size_t i = 0; i < 3; ++i) {
    const auto& call = m[1 + 2 * i]["tool_calls"][0];
    EXPECT_EQ(call["id"], "functions.lookup:" + std::to_string(i));
    EXPECT_EQ(nlohmann::json::parse(call["function"]["arguments"].get<std::string>())["key"], key);
    const auto& result = m[2 + 2 * i];
    EXPECT_EQ(result["tool_call_id"], call["id"]);
    EXPECT_EQ(result["content"], *look_up_key(key));
    key = result["content"].get<std::string>();
  }
  EXPECT_EQ(m.back()["content"], "Answer: " + p.answer);
}

TEST(KeyChainTask, SynthWritesWholeFilesAndBadOptionsNameTheFlag) {
  testing::ScratchDir dir("key-chain-synth");
  KeyChainSynthOptions options;
  options.out = dir / "chains.jsonl";
  options.count = 20;
  options.min_length = 2;
  options.max_length = 5;
  const int64_t lookups = write_key_chain_jsonl(options);
  std::ifstream in(options.out);
  int64_t lines = 0, calls = 0;
  for (std::string line; std::getline(in, line); ++lines) {
    const auto record = nlohmann::json::parse(line);
    for (const auto& message : record["messages"]) calls += message.contains("tool_calls");
  }
  EXPECT_EQ(lines, 20);
  EXPECT_EQ(calls, lookups);
  EXPECT_GE(lookups, 40);
  EXPECT_LE(lookups, 100);
  options.max_length = 1;
  options.out = dir / "bad.jsonl";
  testing::expect_error([&] { write_key_chain_jsonl(options); }, {"--max-length (1)", "--min-length 2"});
  options.max_length = 301;
  testing::expect_error([&] { write_key_chain_jsonl(options); }, {"--max-length (301)"});
  EXPECT_FALSE(std::filesystem::exists(dir / "bad.jsonl"));
}

}  // namespace
}  // namespace k2f::data
