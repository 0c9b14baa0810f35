#include "train/parallel_runtime.h"

#include <cmath>
#include <algorithm>
#include <map>

#include "base/error.h"
#include "parallel/comm.h"
#include "parallel/pipeline_schedule.h"
#include "parallel/zero1.h"
#include "parallel/expert_dispatcher.h"
#include "parallel/grad_sync.h"
#include "parallel/mesh.h"

namespace k2f::train {

std::shared_ptr<parallel::DistributedContext> join_launched_ranks(double timeout_s) {
  const auto env = parallel::detect_launch_env();
  if (env.world_size == 1) return nullptr;
  parallel::DistOptions options;
  options.timeout_s = timeout_s;
  return std::make_shared<parallel::DistributedContext>(parallel::init_distributed(env, options));
}

ParallelRuntime::ParallelRuntime(std::shared_ptr<parallel::DistributedContext> context,
                                 const parallel::ParallelLayout& layout)
    : context_(std::move(context)), layout_(layout) {
  check(layout_.pp * layout_.dp == world_size(), "parallel layout pp ", layout_.pp, " x dp ", layout_.dp,
        " does not cover the ", world_size(), " ranks");
  groups_.coord = parallel::Mesh(layout_).coord(rank());
}

void ParallelRuntime::on_all_ranks(const std::function<void()>& body) const {
  if (context_) {
    context_->check_on_all_ranks(body);
  } else {
    body();
  }
}

void ParallelRuntime::create_groups(const std::string& backend) {
  if (!context_) return;
  context_->use_backend(backend);
  groups_ = parallel::create_process_groups(*context_, parallel::Mesh(layout_));
}

model::ModelPart ParallelRuntime::model_part(const model::ModelConfig& config) const {
  model::ModelPart part;
  if (layout_.pp == 1) return part;
  part.layers = parallel::stage_layers(layout_, config.num_hidden_layers, stage());
  part.embedding = stage() == 0;
  part.head = stage() == layout_.pp - 1;  // the last chunk, pp x virtual_stages - 1, is on the last stage
  return part;
}

model::ExpertSlice ParallelRuntime::expert_slice(const model::ModelConfig& config) const {
  if (layout_.ep == 1) return {};
  const parallel::Mesh mesh(layout_);
  return {mesh.first_local_expert(coord().ep_rank, config.n_routed_experts), mesh.num_local_experts(config.n_routed_experts)};
}

void ParallelRuntime::install_expert_dispatcher(model::KimiForCausalLM& model) const {
  if (layout_.ep == 1) return;
  auto dispatcher = std::make_shared<parallel::AllToAllExpertDispatcher>(groups_.ep);
  for (auto& layer : model->model->decoder_layers)
    if (layer->moe) layer->moe->set_dispatcher(dispatcher);
}

std::vector<double> ParallelRuntime::sum_over_dp(std::vector<double> values) const {
  if (!context_ || values.empty()) return values;
  auto sums = torch::tensor(values, torch::kFloat64);
  parallel::all_reduce_sum(groups_.dp, sums);
  return std::vector<double>(sums.data_ptr<double>(), sums.data_ptr<double>() + sums.numel());
}

void ParallelRuntime::sum_over_dp(std::vector<torch::Tensor>& tensors) const {
  if (!context_) return;
  for (auto& t : tensors) {
    if (!t.defined()) continue;  // the same tensors are undefined on every rank
    if (!t.is_contiguous()) t = t.contiguous();
    parallel::all_reduce_sum(groups_.dp, t);
  }
}

void ParallelRuntime::max_over_dp(torch::Tensor& tensor) const {
  if (!context_) return;
  if (!tensor.is_contiguous()) tensor = tensor.contiguous();
  parallel::all_reduce_max(groups_.dp, tensor);
}

std::vector<double> ParallelRuntime::sum_over_world(std::vector<double> values) const {
  if (!context_ || values.empty()) return values;
  auto sums = torch::tensor(values, torch::kFloat64);
  parallel::all_reduce_sum(groups_.world, sums);
  return std::vector<double>(sums.data_ptr<double>(), sums.data_ptr<double>() + sums.numel());
}

std::vector<double> ParallelRuntime::sum_over_stages(std::vector<double> values) const {
  if (layout_.pp == 1 || values.empty()) return values;
  auto sums = torch::tensor(values, torch::kFloat64);
  parallel::all_reduce_sum(groups_.pp, sums);
  return std::vector<double>(sums.data_ptr<double>(), sums.data_ptr<double>() + sums.numel());
}

double ParallelRuntime::max_over_stages(double value) const {
  if (layout_.pp == 1) return value;
  auto maximum = torch::tensor({value}, torch::kFloat64);
  parallel::all_reduce_max(groups_.pp, maximum);
  return maximum.item<double>();
}

std::vector<std::string> ParallelRuntime::gather_over_stages(const std::string& text) const {
  if (layout_.pp == 1) return {text};
  return parallel::all_gather_strings(groups_.pp, text);
}

std::vector<std::string> ParallelRuntime::gather_over_dp(const std::string& text) const {
  if (!context_) return {text};
  return parallel::all_gather_strings(groups_.dp, text);
}

void ParallelRuntime::sync_gradients(const NamedTensorList& parameters) const {
  if (!context_) return;
  if (layout_.zero1) {
    parallel::reduce_gradients_for_shards(parameters, shards_, groups_.dp, groups_.expert_dp);
  } else {
    parallel::sync_gradients(parameters, groups_.dp, groups_.expert_dp);
  }
}

double ParallelRuntime::global_grad_norm(const NamedTensorList& parameters) const {
  torch::NoGradGuard no_grad;
  if (layout_.zero1 && context_) {  // each rank adds the squares of the pieces it updates
    double held = 0;
    for (size_t i = 0; i < parameters.size(); ++i) {
      const auto& [name, p] = parameters[i];
      const int r = shard_rank(name);
      if (!shards_[i].held_by(r) || !p.grad().defined()) continue;
      const auto grad = shards_[i].rows_split ? p.grad().narrow(0, shards_[i].row_offset(r), shards_[i].row_count(r)) : p.grad();
      held += grad.to(torch::kFloat64).pow(2).sum().item<double>();
    }
    return std::sqrt(sum_over_stages(sum_over_dp(std::vector<double>{held}))[0]);
  }
  double dense = 0, experts = 0;
  for (const auto& [name, p] : parameters) {
    if (!p.grad().defined()) continue;
    const double squared = p.grad().to(torch::kFloat64).pow(2).sum().item<double>();
    (layout_.ep > 1 && parallel::is_routed_expert_parameter(name) ? experts : dense) += squared;
  }
  if (layout_.ep > 1) {
    auto sum = torch::tensor({experts}, torch::kFloat64);
    parallel::all_reduce_sum(groups_.ep, sum);
    experts = sum.item<double>();
  }
  return std::sqrt(sum_over_stages({dense + experts})[0]);
}

std::vector<bool> ParallelRuntime::written_here(const NamedTensorList& tensors) const {
  std::vector<bool> mine(tensors.size(), true);
  if (!context_) return mine;
  for (const bool experts : {false, true}) {
    std::vector<size_t> members;
    std::vector<int64_t> numels;
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (parallel::is_routed_expert_parameter(tensors[i].first) != experts) continue;
      members.push_back(i);
      numels.push_back(tensors[i].second.numel());
    }
    const int replicas = static_cast<int>(experts ? layout_.dp / layout_.ep : layout_.dp);
    const int64_t me = experts ? coord().expert_replica : coord().dp_rank;
    const auto owners = parallel::assign_owners(numels, replicas);
    for (size_t k = 0; k < members.size(); ++k) mine[members[k]] = owners[k] == me;
  }
  return mine;
}

std::vector<std::string> ParallelRuntime::gather_over_world(const std::string& text) const {
  if (!context_) return {text};
  return parallel::all_gather_strings(groups_.world, text);
}

void ParallelRuntime::shard_optimizer_state(const NamedTensorList& parameters, const OptimizerOptions& optimizer) {
  if (!layout_.zero1) return;
  std::vector<bool> elementwise;
  for (const auto& [name, p] : parameters) elementwise.push_back(update_rule(name, p, optimizer) == UpdateRule::AdamW);
  shards_ = parallel::plan_shards(parameters, elementwise, static_cast<int>(layout_.dp),
                                  static_cast<int>(layout_.dp / layout_.ep));
}

int ParallelRuntime::shard_rank(const std::string& name) const {
  return static_cast<int>(parallel::is_routed_expert_parameter(name) ? coord().expert_replica : coord().dp_rank);
}

ParallelRuntime::OptimizerShare ParallelRuntime::optimized_here(const NamedTensorList& parameters) const {
  if (!layout_.zero1) return {parameters, {}};
  check(shards_.size() == parameters.size(), "ZeRO-1: shard_optimizer_state was given ", shards_.size(),
        " parameters, now ", parameters.size());
  OptimizerShare mine;
  for (size_t i = 0; i < parameters.size(); ++i) {
    const int r = shard_rank(parameters[i].first);
    if (!shards_[i].held_by(r)) continue;
    mine.parameters.push_back(parameters[i]);
    mine.rows.push_back(shards_[i].rows_split ? RowRange{shards_[i].row_offset(r), shards_[i].row_count(r)} : RowRange{});
  }
  return mine;
}

void ParallelRuntime::share_updated_parameters(const NamedTensorList& parameters) const {
  if (layout_.zero1 && context_) parallel::broadcast_updated_shards(parameters, shards_, groups_.dp, groups_.expert_dp);
}

}  // namespace k2f::train
