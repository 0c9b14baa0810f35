#include "train/parallel_runtime.h"

#include <cmath>
#include <algorithm>
#include <regex>
#include <set>

#include "base/error.h"
#include "base/json_io.h"
#include "parallel/comm.h"
#include "parallel/pipeline_schedule.h"
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

void ParallelRuntime::create_groups() {
  if (context_) groups_ = parallel::create_process_groups(*context_, parallel::Mesh(layout_));
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

void ParallelRuntime::sync_gradients(const NamedTensorList& parameters) const {
  if (context_) parallel::sync_gradients(parameters, groups_.dp, groups_.expert_dp);
}

double ParallelRuntime::global_grad_norm(const NamedTensorList& parameters) const {
  torch::NoGradGuard no_grad;
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

namespace {
// "model.layers.3.mlp.experts.12.up_proj.weight.momentum" -> ("model.layers.3.mlp.experts.", 12, ".up_proj...").
struct ExpertName {
  std::string prefix, suffix;
  int64_t expert = -1;
};
ExpertName split_expert_name(const std::string& name) {
  static const std::regex pattern(R"(^(.*\.mlp\.experts\.)([0-9]+)(\..*)$)");
  std::smatch match;
  if (!std::regex_match(name, match, pattern)) return {};
  return {match[1], match[3], std::stoll(match[2])};
}
}  // namespace

NamedTensorList ParallelRuntime::gather_routed_experts(const NamedTensorList& local, int64_t n_routed_experts) const {
  if (layout_.ep == 1) return local;
  const int64_t P = layout_.ep, L = n_routed_experts / P, first = coord().ep_rank * L;
  NamedTensorList full;
  size_t i = 0;
  while (i < local.size()) {
    const auto head = split_expert_name(local[i].first);
    if (head.expert < 0) {
      full.push_back(local[i++]);
      continue;
    }
    // One layer's run of routed-expert entries (local experts in order, each with its tensors):
    // rank p holds the same run for experts [p*L, (p+1)*L), so emitting rank by rank is expert order.
    size_t end = i;
    std::vector<ExpertName> names;
    std::vector<std::vector<torch::Tensor>> gathered;  // [entry][rank]
    for (; end < local.size(); ++end) {
      auto name = split_expert_name(local[end].first);
      if (name.expert < 0 || name.prefix != head.prefix) break;
      check(name.expert >= first && name.expert < first + L, "checkpoint: ", local[end].first, " is not among this rank's experts [",
            first, ", ", first + L, ")");
      gathered.push_back(parallel::all_gather(groups_.ep, local[end].second.detach()));
      names.push_back(std::move(name));
    }
    for (int64_t p = 0; p < P; ++p) {
      for (size_t k = 0; k < names.size(); ++k) {
        const int64_t expert = names[k].expert - first + p * L;
        full.emplace_back(names[k].prefix + std::to_string(expert) + names[k].suffix, gathered[k][p]);
      }
    }
    i = end;
  }
  return full;
}

namespace {
// Where a tensor sits in module order: the embedding, layer by layer, then the head, then the rest.
int64_t module_position(const std::string& name, int64_t num_layers) {
  static const std::regex layer(R"(^model\.layers\.([0-9]+)\..*)");
  std::smatch match;
  if (name.rfind("model.embed_tokens.", 0) == 0) return 0;
  if (std::regex_match(name, match, layer)) return 1 + std::stoll(match[1]);
  if (name.rfind("model.norm.", 0) == 0 || name.rfind("lm_head.", 0) == 0) return num_layers + 1;
  return num_layers + 2;
}

Json tensor_headers(const NamedTensorList& tensors) {
  Json headers = Json::array();
  for (const auto& [name, t] : tensors)
    headers.push_back({{"name", name}, {"dtype", static_cast<int>(t.scalar_type())}, {"shape", t.sizes().vec()}});
  return headers;
}
}  // namespace

NamedTensorList ParallelRuntime::gather_stages(const NamedTensorList& local, int64_t num_layers) const {
  if (layout_.pp == 1) return local;
  check(coord().dp_rank == 0, "gather_stages: called on dp index ", coord().dp_rank, " (only index 0 takes part)");
  // Every stage learns every stage's names, dtypes and shapes; then stages send their tensors to stage 0.
  const auto headers = parallel::all_gather_strings(groups_.pp, tensor_headers(local).dump());
  if (stage() != 0) {
    for (const auto& [name, t] : local) parallel::send_async(groups_.pp, t.detach().contiguous(), 0, 0)->wait();
    return {};
  }
  NamedTensorList full = local;
  std::set<std::string> names;
  for (const auto& [name, t] : local) names.insert(name);
  for (int64_t s = 1; s < layout_.pp; ++s) {
    for (const auto& header : Json::parse(headers[static_cast<size_t>(s)])) {
      auto tensor = torch::empty(header.at("shape").get<std::vector<int64_t>>(),
                                 torch::TensorOptions().dtype(static_cast<c10::ScalarType>(header.at("dtype").get<int>())));
      parallel::receive(groups_.pp, tensor, static_cast<int>(s), 0);
      const auto name = header.at("name").get<std::string>();
      if (names.insert(name).second) full.emplace_back(name, tensor);
    }
  }
  std::stable_sort(full.begin(), full.end(), [&](const auto& a, const auto& b) {
    return module_position(a.first, num_layers) < module_position(b.first, num_layers);
  });
  return full;
}

}  // namespace k2f::train
