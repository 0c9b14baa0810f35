// Rewards of one episode (K1.5 / K2, K2_REFERENCE.md section 7): correctness from the task's
// exact checker, a format term (thinking opened and closed in every turn, every tool call
// well-formed, a final answer in the task's form), the K1.5 length reward computed within each
// prompt's group of samples, and a penalty for running into the token budget. Pure functions of
// plain numbers so the tests can check them against hand-computed values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace k2f::train::rl {

struct RewardOptions {
  double correct = 1.0;              // reward of a correct answer
  double format = 0.1;               // added when the format is right
  double length = 0.0;               // weight of the K1.5 length reward (0: off)
  double truncation_penalty = -0.5;  // added when the episode hit the budget
  double progress = 0.0;             // weight of the progress term: weight x progress (0: off)
  void validate(const std::string& prefix = "rl") const;
};

struct EpisodeOutcome {
  bool correct = false;
  bool format_ok = false;
  bool truncated = false;
  int64_t length = 0;  // sampled tokens
  // The share of the task's steps done right, in order from the first (environment.h), in [0, 1]:
  // a long-horizon task's partial credit, so a policy that never finishes still learns to go on.
  double progress = 0;
};

// The share of `expected` reached in order: the longest prefix of `expected` that appears in `got`
// as a subsequence (other results, such as a tool error before a retry, in between do not count
// against it), over expected.size(); 0 when nothing is expected.
double in_order_share(const std::vector<std::string>& got, const std::vector<std::string>& expected);

// K1.5: lambda = 0.5 - (len - min_len) / (max_len - min_len) over the group (0 when all lengths
// are equal); lambda if correct, min(0, lambda) otherwise.
double k15_length_reward(int64_t length, int64_t min_length, int64_t max_length, bool correct);

// One reward per outcome; `group_size` consecutive outcomes are the samples of one prompt.
std::vector<double> compute_rewards(const std::vector<EpisodeOutcome>& outcomes, int64_t group_size,
                                    const RewardOptions& options);

}  // namespace k2f::train::rl
