// What the trainer needs from parallel/: this rank's place in a pipeline/data/expert-parallel
// layout, its process groups, the part of the model it builds, and the few reductions of a
// training step beyond the gradient sync (token counts, loss sums, expert loads, QK maxima, the
// gradient norm, who writes what of a checkpoint). One process
// holds no context and every reduction is the identity, so single-process training runs exactly
// the arithmetic it ran before parallelism existed.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/kimi_model.h"
#include "parallel/bootstrap.h"
#include "parallel/process_groups.h"
#include "parallel/zero1.h"
#include "train/optim/optimizer.h"

namespace k2f::train {

using NamedTensorList = std::vector<std::pair<std::string, torch::Tensor>>;

// The ranks started by the launcher (mpirun, torchrun, Slurm) joined into a world, or null when
// this is the only process: then no store is created and no port is opened.
std::shared_ptr<parallel::DistributedContext> join_launched_ranks(double timeout_s);

class ParallelRuntime {
 public:
  // `context` null: one process. `layout` must be resolved (dp > 0) and valid for the world.
  ParallelRuntime(std::shared_ptr<parallel::DistributedContext> context, const parallel::ParallelLayout& layout);

  bool distributed() const { return context_ != nullptr; }
  int rank() const { return context_ ? context_->rank() : 0; }
  int world_size() const { return context_ ? context_->world_size() : 1; }
  bool is_main() const { return rank() == 0; }
  // This rank's index among the ranks of its host (picks its GPU).
  int local_rank() const { return context_ ? context_->env.local_rank : 0; }
  const parallel::ParallelLayout& layout() const { return layout_; }
  const parallel::MeshCoord& coord() const { return groups_.coord; }
  const parallel::ProcessGroups& groups() const { return groups_; }
  int64_t stage() const { return coord().pp_rank; }

  // The layers and ends of the model this rank's pipeline stage holds (the whole model for pp 1).
  model::ModelPart model_part(const model::ModelConfig& config) const;

  // Runs `body` on every rank; if it throws on any, every rank throws that rank's message.
  void on_all_ranks(const std::function<void()>& body) const;
  // Creates the dp / ep / expert-dp / pp groups on `backend` ("gloo" | "nccl"; collective over
  // the world, every rank alike); a no-op in one process.
  void create_groups(const std::string& backend);

  // The routed experts this rank holds, and the dispatcher that reaches the others (null: local).
  model::ExpertSlice expert_slice(const model::ModelConfig& config) const;
  void install_expert_dispatcher(model::KimiForCausalLM& model) const;

  // Sums over the data-parallel group (identity in one process).
  std::vector<double> sum_over_dp(std::vector<double> values) const;
  void sum_over_dp(std::vector<torch::Tensor>& tensors) const;
  // Element-wise maximum over the data-parallel group (identity in one process).
  void max_over_dp(torch::Tensor& tensor) const;
  // Sums over every rank, and over the stages of this rank's dp index (identity in one process).
  std::vector<double> sum_over_world(std::vector<double> values) const;
  std::vector<double> sum_over_stages(std::vector<double> values) const;
  double max_over_stages(double value) const;
  // Every stage's `text`, in stage order (just `text` without pipeline parallelism).
  std::vector<std::string> gather_over_stages(const std::string& text) const;
  // Every dp rank's `text`, in dp order (just `text` in one process).
  std::vector<std::string> gather_over_dp(const std::string& text) const;
  // Gradients summed over dp (dense) and over the expert-data-parallel group (routed experts).
  void sync_gradients(const NamedTensorList& parameters) const;
  // The L2 norm of all gradients of the whole model: dense ones are replicated after the sync,
  // routed experts' are spread over the ep group, layers over the pipeline stages.
  double global_grad_norm(const NamedTensorList& parameters) const;

  // Of tensors that every replica of this rank holds alike and in the same order (a stage's dense
  // tensors over dp, routed experts over the expert-data group), those this rank writes to a
  // checkpoint: each goes to one replica, balanced by element count. All of them in one process.
  std::vector<bool> written_here(const NamedTensorList& tensors) const;
  // Every rank's `text`, in rank order (just `text` in one process).
  std::vector<std::string> gather_over_world(const std::string& text) const;

  // ZeRO-1 (parallel.zero1; parallel/zero1.h). Plans each parameter's shard from its update
  // rule; call once with the trainer's parameters, which every later call passes in the same order.
  void shard_optimizer_state(const NamedTensorList& parameters, const OptimizerOptions& optimizer);
  // What this rank's optimizer updates: under ZeRO-1 its parameters and rows, otherwise everything.
  struct OptimizerShare {
    NamedTensorList parameters;
    std::vector<RowRange> rows;  // empty: every row
  };
  OptimizerShare optimized_here(const NamedTensorList& parameters) const;
  // After the optimizer step: the updated pieces to every replica (ZeRO-1; else nothing).
  void share_updated_parameters(const NamedTensorList& parameters) const;
 private:
  std::shared_ptr<parallel::DistributedContext> context_;
  parallel::ParallelLayout layout_;
  parallel::ProcessGroups groups_;
  // This rank's index in the replication group of a parameter (expert-dp for routed experts, else dp).
  int shard_rank(const std::string& name) const;
  std::vector<parallel::ParameterShard> shards_;  // ZeRO-1: by parameter
};

}  // namespace k2f::train
