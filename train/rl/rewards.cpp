#include "train/rl/rewards.h"

#include <algorithm>

#include "base/error.h"

namespace k2f::train::rl {

void RewardOptions::validate(const std::string& prefix) const {
  check(length >= 0, prefix, ".length_reward (", length, ") must be >= 0");
  check(truncation_penalty <= 0, prefix, ".truncation_penalty (", truncation_penalty, ") must be <= 0");
  check(progress >= 0, prefix, ".reward_progress (", progress, ") must be >= 0");
}

double in_order_share(const std::vector<std::string>& got, const std::vector<std::string>& expected) {
  if (expected.empty()) return 0.0;
  size_t reached = 0;
  for (const auto& result : got)
    if (reached < expected.size() && result == expected[reached]) ++reached;
  return static_cast<double>(reached) / static_cast<double>(expected.size());
}

double k15_length_reward(int64_t length, int64_t min_length, int64_t max_length, bool correct) {
  if (max_length == min_length) return 0.0;
  const double lambda = 0.5 - static_cast<double>(length - min_length) / static_cast<double>(max_length - min_length);
  return correct ? lambda : std::min(0.0, lambda);
}

std::vector<double> compute_rewards(const std::vector<EpisodeOutcome>& outcomes, int64_t group_size,
                                    const RewardOptions& options) {
  check(group_size > 0 && outcomes.size() % static_cast<size_t>(group_size) == 0, "compute_rewards: ",
        outcomes.size(), " outcomes are not whole groups of ", group_size);
  std::vector<double> rewards(outcomes.size());
  for (size_t g = 0; g < outcomes.size(); g += static_cast<size_t>(group_size)) {
    int64_t min_length = outcomes[g].length, max_length = outcomes[g].length;
    for (size_t i = g; i < g + static_cast<size_t>(group_size); ++i) {
      min_length = std::min(min_length, outcomes[i].length);
      max_length = std::max(max_length, outcomes[i].length);
    }
    for (size_t i = g; i < g + static_cast<size_t>(group_size); ++i) {
      const auto& o = outcomes[i];
      double r = o.correct ? options.correct : 0.0;
      if (o.format_ok) r += options.format;
      if (options.length > 0) r += options.length * k15_length_reward(o.length, min_length, max_length, o.correct);
      if (o.truncated) r += options.truncation_penalty;
      r += options.progress * o.progress;
      rewards[i] = r;
    }
  }
  return rewards;
}

}  // namespace k2f::train::rl
