#include "train/rl/objectives.h"

#include <cmath>

#include "base/error.h"

namespace k2f::train::rl {

Objective parse_objective(const std::string& name, const std::string& key) {
  if (name == "pmd_mean") return Objective::pmd_mean;
  if (name == "grpo") return Objective::grpo;
  fail(key, " (\"", name, "\") must be \"pmd_mean\" or \"grpo\"");
}

namespace {
void check_groups(const std::vector<double>& rewards, int64_t group_size) {
  check(group_size > 0 && rewards.size() % static_cast<size_t>(group_size) == 0, rewards.size(),
        " rewards are not whole groups of ", group_size);
}
torch::Tensor token_counts(const torch::Tensor& mask_NT) { return mask_NT.sum(1).clamp_min(1.0); }
}  // namespace

torch::Tensor group_mean_baselines(const std::vector<double>& rewards, int64_t group_size) {
  check_groups(rewards, group_size);
  const auto r_GK = torch::tensor(rewards, torch::kFloat64).view({-1, group_size});
  return r_GK.mean(1, /*keepdim=*/true).expand_as(r_GK).reshape({-1}).clone();
}

torch::Tensor group_normalised_advantages(const std::vector<double>& rewards, int64_t group_size, double eps) {
  check_groups(rewards, group_size);
  const auto r_GK = torch::tensor(rewards, torch::kFloat64).view({-1, group_size});
  const auto mean_G1 = r_GK.mean(1, true);
  const auto std_G1 = (r_GK - mean_G1).pow(2).mean(1, true).sqrt();
  return ((r_GK - mean_G1) / (std_G1 + eps)).reshape({-1});
}

torch::Tensor pmd_mean_terms(const torch::Tensor& logp_NT, const torch::Tensor& logp_old_NT, const torch::Tensor& mask_NT,
                             const torch::Tensor& rewards_N, const torch::Tensor& baselines_N, double tau) {
  const auto log_ratio_N = ((logp_NT - logp_old_NT) * mask_NT).sum(1);
  return (rewards_N.to(log_ratio_N.dtype()) - baselines_N.to(log_ratio_N.dtype()) - tau * log_ratio_N).pow(2);
}

torch::Tensor grpo_terms(const torch::Tensor& logp_NT, const torch::Tensor& logp_old_NT, const torch::Tensor& mask_NT,
                         const torch::Tensor& advantages_N, double clip_epsilon) {
  const auto ratio_NT = (logp_NT - logp_old_NT).exp();
  const auto a_N1 = advantages_N.to(ratio_NT.dtype()).unsqueeze(1);
  const auto surrogate_NT = torch::min(ratio_NT * a_N1, ratio_NT.clamp(1 - clip_epsilon, 1 + clip_epsilon) * a_N1);
  return -(surrogate_NT * mask_NT).sum(1) / token_counts(mask_NT);
}

torch::Tensor k3_kl_terms(const torch::Tensor& logp_NT, const torch::Tensor& logp_ref_NT, const torch::Tensor& mask_NT) {
  const auto d_NT = logp_ref_NT - logp_NT;
  return ((d_NT.exp() - d_NT - 1) * mask_NT).sum(1) / token_counts(mask_NT);
}

}  // namespace k2f::train::rl
