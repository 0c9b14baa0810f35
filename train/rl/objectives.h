// RL objectives as per-episode loss terms (the caller sums them over micro-batches and divides by
// the number of episodes, so micro-batching never changes the loss):
//  - PMD-mean (K1.5/K2): (r_i - mean_j r_j - tau * log(pi(y_i|x) / pi_old(y_i|x)))^2 with the
//    log-ratio summed over the episode's sampled tokens; no value network.
//  - GRPO-style clipped surrogate: A_i = (r_i - mean) / (std + eps) within the prompt's group;
//    -mean_t min(rho_t A_i, clip(rho_t, 1-eps, 1+eps) A_i) over the episode's sampled tokens.
//  - KL to a reference, k3 estimator per token (exp(ref - cur) - (ref - cur) - 1), token mean.
// Log-prob tensors are per target position; masks are 1 on sampled tokens only.
// Legend: N episodes, T target positions.
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

namespace k2f::train::rl {

enum class Objective { pmd_mean, grpo };
Objective parse_objective(const std::string& name, const std::string& key);  // "pmd_mean" or "grpo"

// Per episode: the mean reward of its group (group_size consecutive episodes). [N]
torch::Tensor group_mean_baselines(const std::vector<double>& rewards, int64_t group_size);
// Per episode: (r - group mean) / (group std + eps), population std. [N]
torch::Tensor group_normalised_advantages(const std::vector<double>& rewards, int64_t group_size, double eps = 1e-6);

// [N]: (rewards - baselines - tau * sum_t mask*(logp - logp_old))^2.
torch::Tensor pmd_mean_terms(const torch::Tensor& logp_NT, const torch::Tensor& logp_old_NT, const torch::Tensor& mask_NT,
                             const torch::Tensor& rewards_N, const torch::Tensor& baselines_N, double tau);
// [N]: -sum_t mask*min(rho A, clip(rho) A) / max(1, sum_t mask).
torch::Tensor grpo_terms(const torch::Tensor& logp_NT, const torch::Tensor& logp_old_NT, const torch::Tensor& mask_NT,
                         const torch::Tensor& advantages_N, double clip_epsilon);
// [N]: sum_t mask*(exp(ref - logp) - (ref - logp) - 1) / max(1, sum_t mask).
torch::Tensor k3_kl_terms(const torch::Tensor& logp_NT, const torch::Tensor& logp_ref_NT, const torch::Tensor& mask_NT);

}  // namespace k2f::train::rl
