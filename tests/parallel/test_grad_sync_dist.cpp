// parallel/grad_sync.cpp across ranks: dense gradients are averaged over dp, routed expert gradients
// over the expert-data-parallel group only, across several buckets and dtypes, with a missing
// gradient on one rank counted as zeros.
#include <gtest/gtest.h>

#include "dist_context.h"
#include "parallel/grad_sync.h"
#include "parallel/process_groups.h"

namespace k2f::parallel {
namespace {

using testing::dist;

TEST(GradSyncDist, DenseOverDpExpertsOverExpertDp) {
  const int64_t W = dist().world_size();
  ParallelLayout layout;
  layout.dp = W;
  layout.ep = W % 2 == 0 ? 2 : 1;
  const Mesh mesh(layout);
  const auto groups = create_process_groups(dist(), mesh);
  const int r = dist().rank();
  // Gradient of parameter i on rank r: (r + 1) * (i + 1), except that rank 0 has none for "lm_head".
  const std::vector<std::pair<std::string, torch::ScalarType>> spec{
      {"model.embed_tokens.weight", torch::kFloat32},
      {"model.layers.1.mlp.experts.0.up_proj.weight", torch::kFloat64},
      {"model.layers.1.mlp.shared_experts.up_proj.weight", torch::kFloat64},
      {"model.layers.1.mlp.experts.1.down_proj.weight", torch::kFloat32},
      {"lm_head.weight", torch::kFloat32}};
  NamedParameters params;
  for (size_t i = 0; i < spec.size(); ++i) {
    auto p = torch::zeros({3, 5}, spec[i].second).requires_grad_(true);
    if (!(spec[i].first == "lm_head.weight" && r == 0)) {
      p.mutable_grad() = torch::full({3, 5}, static_cast<double>((r + 1) * (i + 1)), spec[i].second);
    }
    params.emplace_back(spec[i].first, p);
  }
  auto mean_rank_plus_one = [&](const std::vector<int>& ranks, bool skip_rank0) {
    double sum = 0;
    for (int m : ranks) sum += (skip_rank0 && m == 0) ? 0 : m + 1;
    return sum / static_cast<double>(ranks.size());
  };
  // Scale 1 / group size: experts and dense use different groups, so sync each set with its own scale.
  NamedParameters dense, experts;
  for (const auto& item : params) (is_routed_expert_parameter(item.first) ? experts : dense).push_back(item);
  GradSyncOptions options;
  options.bucket_bytes = 100;  // several buckets
  options.scale = 1.0 / static_cast<double>(mesh.dp_group(r).size());
  sync_gradients(dense, groups.dp, groups.expert_dp, options);
  options.scale = 1.0 / static_cast<double>(mesh.expert_dp_group(r).size());
  sync_gradients(experts, groups.dp, groups.expert_dp, options);
  for (size_t i = 0; i < spec.size(); ++i) {
    const bool expert = is_routed_expert_parameter(spec[i].first);
    const auto& ranks = expert ? mesh.expert_dp_group(r) : mesh.dp_group(r);
    const double expected = mean_rank_plus_one(ranks, spec[i].first == "lm_head.weight") * static_cast<double>(i + 1);
    const auto& grad = params[i].second.grad();
    EXPECT_EQ(grad.scalar_type(), spec[i].second) << spec[i].first;
    EXPECT_TRUE(torch::allclose(grad, torch::full({3, 5}, expected, spec[i].second), 1e-6, 0))
        << spec[i].first << ": " << grad[0][0].item<double>() << " vs " << expected;
  }
}

}  // namespace
}  // namespace k2f::parallel
