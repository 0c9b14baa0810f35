// A routed-experts problem solved twice: by the single-process reference (all experts,
// RoutedExperts::forward_grouped over every member's tokens, fp64) and by the expert-parallel
// dispatcher on each member's own tokens with only its local experts. Every rank builds the same
// reference from the same seeds, so outputs and gradients compare without communicating.
// Legend: N tokens of one rank, G tokens of all members, K experts per token, D hidden, E experts.
#pragma once

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "model/experts.h"
#include "model/moe.h"
#include "parallel/expert_dispatcher.h"

namespace k2f::testing {

struct ExpertProblem {
  int64_t hidden = 12, inner = 10, num_experts = 8, top_k = 2;
  std::vector<int64_t> tokens_per_member;  // N of each member, in group-rank order
  std::vector<int64_t> allowed_experts;    // routing picks only these (empty: all)
  uint64_t seed = 7;
};

struct ExpertInputs {
  torch::Tensor x_GD, idx_GK, weight_GK, probe_GD;  // probe: the loss is sum(y * probe)
};

inline ExpertInputs make_inputs(const ExpertProblem& p) {
  const int64_t G = std::accumulate(p.tokens_per_member.begin(), p.tokens_per_member.end(), int64_t{0});
  std::vector<int64_t> allowed = p.allowed_experts;
  if (allowed.empty()) {
    for (int64_t e = 0; e < p.num_experts; ++e) allowed.push_back(e);
  }
  const auto allowed_A = torch::tensor(allowed, torch::kInt64);
  torch::manual_seed(p.seed + 1);
  ExpertInputs in;
  in.x_GD = torch::randn({G, p.hidden}, torch::kFloat64);
  const auto pick_GK = std::get<1>(torch::randn({G, allowed_A.numel()}, torch::kFloat64).topk(p.top_k, 1));
  in.idx_GK = allowed_A.index_select(0, pick_GK.reshape({-1})).view({G, p.top_k});
  in.weight_GK = torch::rand({G, p.top_k}, torch::kFloat64) + 0.1;
  in.probe_GD = torch::arange(G * p.hidden, torch::kFloat64).view({G, p.hidden}).cos();
  return in;
}

inline model::RoutedExperts make_experts(const ExpertProblem& p, int64_t first, int64_t count) {
  torch::manual_seed(p.seed);
  model::RoutedExperts all(p.hidden, p.inner, 0, p.num_experts);
  all->to(torch::kFloat64);
  for (auto& param : all->parameters()) param.data().normal_(0, 0.3);
  if (first == 0 && count == p.num_experts) return all;
  model::RoutedExperts slice(p.hidden, p.inner, first, count);
  slice->to(torch::kFloat64);
  const auto source = all->named_parameters();
  for (auto& item : slice->named_parameters()) item.value().data().copy_(source[item.key()]);
  return slice;
}

// Outputs and gradients of one member's rows (and of the experts it holds).
struct ExpertResult {
  torch::Tensor y_ND, grad_x_ND, grad_weight_NK;
  std::map<std::string, torch::Tensor> expert_grads;  // by parameter name; zeros when unused
};

inline ExpertResult run_and_backward(const model::RoutedExperts& experts, model::ExpertDispatcher& dispatcher,
                                     const ExpertInputs& in, int64_t begin, int64_t count) {
  auto x = in.x_GD.narrow(0, begin, count).clone().requires_grad_(true);
  auto w = in.weight_GK.narrow(0, begin, count).clone().requires_grad_(true);
  model::Routing routing;
  routing.expert_idx_NK = in.idx_GK.narrow(0, begin, count);
  routing.weight_NK = w;
  const auto y = dispatcher.dispatch_and_combine(x, routing, experts);
  (y * in.probe_GD.narrow(0, begin, count)).sum().backward();
  ExpertResult r;
  r.y_ND = y.detach();
  r.grad_x_ND = x.grad().defined() ? x.grad() : torch::zeros_like(x);
  r.grad_weight_NK = w.grad().defined() ? w.grad() : torch::zeros_like(w);
  for (const auto& item : experts->named_parameters()) {
    r.expert_grads[item.key()] = item.value().grad().defined() ? item.value().grad().clone() : torch::zeros_like(item.value());
  }
  return r;
}

inline void expect_close(const torch::Tensor& a, const torch::Tensor& b, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  EXPECT_TRUE(torch::allclose(a, b, 1e-12, 1e-12)) << what << ": max |diff| " << (a - b).abs().max().item<double>();
}

// The expert-parallel result of member `member` equals the single-process reference's rows.
inline void expect_ep_equals_reference(const ExpertProblem& p, const parallel::Group& ep_group) {
  const int64_t member = ep_group->getRank(), members = ep_group->getSize();
  ASSERT_EQ(static_cast<int64_t>(p.tokens_per_member.size()), members);
  const auto in = make_inputs(p);
  const int64_t begin = std::accumulate(p.tokens_per_member.begin(), p.tokens_per_member.begin() + member, int64_t{0});
  const int64_t count = p.tokens_per_member[member];

  auto reference_experts = make_experts(p, 0, p.num_experts);
  model::LocalExpertDispatcher local;
  const auto reference = run_and_backward(reference_experts, local, in, 0, in.x_GD.size(0));

  const int64_t per_rank = p.num_experts / members;
  auto my_experts = make_experts(p, member * per_rank, per_rank);
  parallel::AllToAllExpertDispatcher dispatcher(ep_group);
  const auto ep = run_and_backward(my_experts, dispatcher, in, begin, count);

  expect_close(ep.y_ND, reference.y_ND.narrow(0, begin, count), "output");
  expect_close(ep.grad_x_ND, reference.grad_x_ND.narrow(0, begin, count), "gradient of x");
  expect_close(ep.grad_weight_NK, reference.grad_weight_NK.narrow(0, begin, count), "gradient of routing weights");
  ASSERT_EQ(ep.expert_grads.size(), static_cast<size_t>(per_rank * 3));
  for (const auto& [name, grad] : ep.expert_grads) expect_close(grad, reference.expert_grads.at(name), "gradient of " + name);
  if (in.x_GD.size(0) > 0) {
    EXPECT_GT(reference.y_ND.abs().sum().item<double>(), 0.0);
  }
}

// Dispatch then combine, no experts in between, unit total weight per token (top-1 weight 1, or
// top-2 weights 1/2): returns x and its gradient bit for bit, in any dtype (bf16 rows travel as bytes).
inline void expect_dispatch_combine_identity(const parallel::Group& ep_group, int64_t num_tokens, int64_t top_k,
                                             int64_t experts_per_rank, const std::vector<int64_t>& allowed, uint64_t seed,
                                             torch::ScalarType dtype = torch::kFloat64) {
  ExpertProblem p;
  p.tokens_per_member.assign(static_cast<size_t>(ep_group->getSize()), num_tokens);
  p.num_experts = experts_per_rank * ep_group->getSize();
  p.top_k = top_k;
  p.allowed_experts = allowed;
  p.seed = seed + static_cast<uint64_t>(ep_group->getRank());  // each rank routes differently
  const auto in = make_inputs(p);
  auto x = in.x_GD.narrow(0, 0, num_tokens).to(dtype).requires_grad_(true);
  const auto weight = torch::full({num_tokens, top_k}, 1.0 / static_cast<double>(top_k), torch::kFloat32);
  parallel::AllToAllExpertDispatcher dispatcher(ep_group);
  auto dispatched = dispatcher.dispatch(x, in.idx_GK.narrow(0, 0, num_tokens), experts_per_rank);
  const auto y = dispatcher.combine(dispatched.x_grouped_RD, dispatched.plan, weight);
  const auto probe = in.probe_GD.narrow(0, 0, num_tokens).to(dtype);
  (y * probe).sum().backward();
  EXPECT_EQ(y.scalar_type(), dtype);
  EXPECT_TRUE(torch::equal(y, x.detach())) << "dispatch then combine changed the input";
  EXPECT_TRUE(torch::equal(x.grad(), probe)) << "its gradient is not the output gradient";
  int64_t rows = 0;
  for (auto c : dispatched.plan.count_per_local) rows += c;
  EXPECT_EQ(rows, dispatched.x_grouped_RD.size(0));
}

}  // namespace k2f::testing
