// The embedded horizon task (issue 24): a chain of keys followed through a lookup tool. A key is
// seven digits (six and a check digit) that name, scrambled, a code and the lookups left (1..300):
// neither can be read off the key, so a policy can only follow the chain, never count or guess
// along it. Looking up a key with lookups left returns the next key (a fixed pseudo-random function,
// so the tool needs no state and every program computes the same chain); the last lookup returns
// "done VVVV", the value the task asks for. A task of length N starts at a key with N lookups
// left, so its answer needs exactly N sequential calls, each on the result of the last, and its
// checker is exact. The held-out split is a function of the start key (a hash), like the
// arithmetic task's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/arithmetic_task.h"  // TaskSplit

namespace k2f::data {

constexpr int64_t kMaxChainLength = 300;

struct KeyChainProblem {
  std::string start;   // "2286185"
  int64_t length = 0;  // lookups needed (the R of the start key)
  std::string answer;  // the value at the chain's end, four digits ("0582")
  std::string question() const;  // the user message
  // Every lookup result along the chain, in order: length - 1 keys, then "done VVVV".
  std::vector<std::string> results() const;
};

// The lookup tool's answer for `key`; nullopt when it is not a key (seven digits, a valid check
// digit, naming a code and lookups left).
std::optional<std::string> look_up_key(const std::string& key);
// The lookups a key has left, itself included; nullopt when it is not a key.
std::optional<int64_t> lookups_left(const std::string& key);

// `count` distinct problems of `split` with lengths drawn uniformly from [min_length, max_length],
// in order from a stream seeded by `seed`.
std::vector<KeyChainProblem> make_key_chain_problems(uint64_t seed, int64_t count, int64_t min_length,
                                                     int64_t max_length, TaskSplit split);
bool is_heldout_key(const std::string& start);

// The lookup tool's OpenAI-style declaration.
nlohmann::ordered_json lookup_tools_json();

// One SFT record {"tools", "messages"}: the question, one assistant turn per lookup (the call on
// the last result), the tool results, and the answer "Answer: VVVV".
nlohmann::ordered_json make_key_chain_conversation(const KeyChainProblem& problem);

struct KeyChainSynthOptions {
  std::string out;          // JSONL path (written whole or not at all)
  int64_t count = 1000;
  uint64_t seed = 0;
  int64_t min_length = 1;
  int64_t max_length = 8;
  void validate() const;    // errors name the flag (--min-length ...) and the value
};
// Writes `count` train-split conversations; returns the total number of lookups in them.
int64_t write_key_chain_jsonl(const KeyChainSynthOptions& options);

}  // namespace k2f::data
