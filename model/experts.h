// The routed experts of one MoE layer, each an MLP registered under its GLOBAL expert id (so an
// expert-parallel rank holding experts 8..15 still names them "experts.8" ... as HF does).
// `forward_grouped` sorts the (token, expert) pairs by expert and runs one GEMM per expert on a
// contiguous block; `forward_loop` is the slow per-expert reference it is tested against.
// Legend: N tokens, D hidden, K experts per token, M = N*K routed pairs.
#pragma once

#include <map>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "model/layers.h"

namespace k2f::model {

class RoutedExpertsImpl : public torch::nn::Module {
 public:
  // Holds experts [first_expert, first_expert + num_local) of the layer.
  RoutedExpertsImpl(int64_t hidden_size, int64_t expert_intermediate_size, int64_t first_expert, int64_t num_local);

  // y_ND = sum_k weight_NK[n,k] * expert_{idx_NK[n,k]}(x_ND[n]); every idx must be local.
  torch::Tensor forward_grouped(const torch::Tensor& x_ND, const torch::Tensor& idx_NK,
                                const torch::Tensor& weight_NK) const;
  torch::Tensor forward_loop(const torch::Tensor& x_ND, const torch::Tensor& idx_NK,
                             const torch::Tensor& weight_NK) const;

  // Runs the experts on rows already sorted by local expert: rows [offset_e, offset_e+count_e) go
  // to local expert e. The building block of the grouped and expert-parallel paths.
  torch::Tensor forward_sorted(const torch::Tensor& x_sorted_MD, const std::vector<int64_t>& count_per_local) const;

  // On a CUDA LibTorch that has a grouped GEMM (2.8+), bf16 activations on a GPU and plain
  // experts (no QAT or packed kernel) run as three grouped GEMMs instead of one GEMM per expert.
  bool use_grouped_gemm = true;
  bool runs_grouped_gemm(const torch::Tensor& x) const;

  int64_t first_expert() const { return first_expert_; }
  int64_t num_local() const { return static_cast<int64_t>(experts_.size()); }
  const MLP& expert(int64_t global_id) const { return experts_.at(global_id - first_expert_); }

 private:
  torch::Tensor forward_sorted_grouped_gemm(const torch::Tensor& x_sorted_MD,
                                           const std::vector<int64_t>& count_per_local) const;

  int64_t first_expert_;
  std::vector<MLP> experts_;
};
TORCH_MODULE(RoutedExperts);

}  // namespace k2f::model
