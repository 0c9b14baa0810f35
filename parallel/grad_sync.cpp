#include "parallel/grad_sync.h"

#include <map>
#include <regex>
#include <sstream>

#include "base/error.h"

namespace k2f::parallel {

namespace {

// Flattens one bucket, sums it over the group, scales, and copies each slice back.
void reduce_bucket(const std::vector<torch::Tensor>& grads, const Group& group, double scale) {
  std::vector<torch::Tensor> flat_parts;
  for (const auto& g : grads) flat_parts.push_back(g.reshape({-1}));
  auto flat = torch::cat(flat_parts);
  if (group->getSize() > 1) all_reduce_sum(group, flat);
  if (scale != 1.0) flat.mul_(scale);
  int64_t offset = 0;
  for (const auto& g : grads) {
    g.copy_(flat.narrow(0, offset, g.numel()).view(g.sizes()));
    offset += g.numel();
  }
}

}  // namespace

bool is_routed_expert_parameter(const std::string& hf_name) {
  static const std::regex routed(R"((^|\.)mlp\.experts\.[0-9]+\.)");
  return std::regex_search(hf_name, routed);
}

void all_reduce_gradients(const std::vector<torch::Tensor>& parameters, const Group& group,
                          const GradSyncOptions& options) {
  check(group.defined(), "gradient sync: this rank is not in the group");
  check(options.bucket_bytes > 0, "gradient sync: bucket size (", options.bucket_bytes, " bytes) must be > 0");
  // Buckets are filled per (dtype, device) in parameter order, the same on every rank.
  std::map<std::string, std::vector<torch::Tensor>> open;
  std::map<std::string, int64_t> open_bytes;
  for (const auto& p : parameters) {
    auto& grad = p.mutable_grad();
    if (!grad.defined()) grad = torch::zeros_like(p);
    std::ostringstream key_stream;
    key_stream << grad.scalar_type() << "/" << grad.device();
    const auto key = key_stream.str();
    open[key].push_back(grad);
    open_bytes[key] += grad.numel() * grad.element_size();
    if (open_bytes[key] >= options.bucket_bytes) {
      reduce_bucket(open[key], group, options.scale);
      open[key].clear();
      open_bytes[key] = 0;
    }
  }
  for (auto& [key, grads] : open) {
    if (!grads.empty()) reduce_bucket(grads, group, options.scale);
  }
}

void sync_gradients(const NamedParameters& parameters, const Group& dp_group, const Group& expert_dp_group,
                    const GradSyncOptions& options) {
  std::vector<torch::Tensor> dense, experts;
  for (const auto& [name, p] : parameters) (is_routed_expert_parameter(name) ? experts : dense).push_back(p);
  if (!dense.empty()) all_reduce_gradients(dense, dp_group, options);
  if (!experts.empty()) all_reduce_gradients(experts, expert_dp_group, options);
}

}  // namespace k2f::parallel
