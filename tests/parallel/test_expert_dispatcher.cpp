// parallel/expert_dispatcher.cpp in one process (an ep group of one rank, Gloo over loopback):
// equals the local grouped computation in outputs and every gradient, and dispatch-then-combine is
// the identity. The multi-rank versions run under mpirun (test_expert_dispatcher_dist.cpp).
#include <gtest/gtest.h>

#include "expert_case.h"
#include "parallel/bootstrap.h"
#include "test_util.h"

namespace k2f::parallel {
namespace {

DistributedContext& single_process() {
  static DistributedContext ctx = [] {
    DistOptions o;
    o.configure_threads = false;
    return init_distributed(detect_launch_env(env_from_map({})), o);
  }();
  return ctx;
}

TEST(AllToAllExpertDispatcher, OneRankEqualsLocalGroupedInOutputsAndGradients) {
  testing::ExpertProblem p;
  p.tokens_per_member = {23};
  testing::expect_ep_equals_reference(p, single_process().world);
  p.allowed_experts = {0, 2, 3, 7};  // four experts receive nothing
  p.top_k = 3;
  testing::expect_ep_equals_reference(p, single_process().world);
  p.tokens_per_member = {0};
  testing::expect_ep_equals_reference(p, single_process().world);
}

TEST(AllToAllExpertDispatcher, DispatchThenCombineIsTheIdentity) {
  testing::expect_dispatch_combine_identity(single_process().world, 17, 1, 4, {}, 11);
  testing::expect_dispatch_combine_identity(single_process().world, 17, 2, 4, {1, 2}, 12);
  testing::expect_dispatch_combine_identity(single_process().world, 17, 2, 4, {}, 13, torch::kBFloat16);
}

TEST(AllToAllExpertDispatcher, RejectsExpertsOutsideTheGroup) {
  model::RoutedExperts wrong_slice(4, 4, 2, 2);  // a one-rank group must hold experts from 0
  AllToAllExpertDispatcher dispatcher(single_process().world);
  model::Routing routing;
  routing.expert_idx_NK = torch::zeros({3, 1}, torch::kInt64);
  routing.weight_NK = torch::ones({3, 1});
  testing::expect_error([&] { dispatcher.dispatch_and_combine(torch::zeros({3, 4}), routing, wrong_slice); },
                        {"ep rank 0 must hold experts [0, 2)", "it holds [2, 4)"});
  testing::expect_error([&] { dispatcher.dispatch(torch::zeros({3, 4}), torch::full({3, 1}, 5, torch::kInt64), 2); },
                        {"expert ids in [5, 5]", "holds 2"});
}

}  // namespace
}  // namespace k2f::parallel
