// MuonClip and AdamW as one optimizer with a rule per parameter (K2_REFERENCE section 4): Muon
// (Nesterov momentum, Newton-Schulz orthogonalisation, update RMS matched by
// 0.2*sqrt(max(rows, cols)), decoupled weight decay) for the 2-D matrices of the hidden layers,
// each expert matrix on its own; AdamW (0.9/0.95, 1e-8) for embeddings, lm_head, norms and
// other non-matrix parameters, with the same lr and weight decay. "adamw" puts every parameter
// under AdamW. State tensors carry the parameter's HF name, so checkpoints are layout-free.
#pragma once

#include <regex>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace k2f::train {

enum class UpdateRule { Muon, AdamW };

struct OptimizerOptions {
  std::string name = "muonclip";  // muonclip or adamw
  double weight_decay = 0.1;
  double momentum = 0.95;
  bool nesterov = true;
  double muon_update_scale = 0.2;
  torch::ScalarType newton_schulz_dtype = torch::kBFloat16;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  std::string adamw_pattern;  // regex over HF names forced to AdamW under muonclip ("" = none)
  double qk_clip_tau = 100.0;  // <= 0 disables QK-Clip
  void validate() const;       // messages use "optim.<key>"
};

// The rows of a parameter this optimizer updates (ZeRO-1 splits element-wise rules by rows).
struct RowRange {
  int64_t first = 0;
  int64_t count = -1;  // -1: every row
  bool whole() const { return count < 0; }
};

struct OptimizedParameter {
  std::string name;
  torch::Tensor param;
  UpdateRule rule;
  RowRange rows;
  // The updated part of a tensor shaped like the parameter (the parameter, its gradient, a checkpoint's state).
  torch::Tensor part(const torch::Tensor& full) const { return rows.whole() ? full : full.narrow(0, rows.first, rows.count); }
};

// Muon for 2-D matrices except the embedding and lm_head; AdamW otherwise.
UpdateRule default_rule(const std::string& name, const torch::Tensor& param);
// The rule `options` give the parameter (optim.name, optim.adamw_pattern, then default_rule).
UpdateRule update_rule(const std::string& name, const torch::Tensor& param, const OptimizerOptions& options);

class Optimizer {
 public:
  // `rows`: for each parameter the rows to update (empty: all rows of all parameters). State is
  // kept for those rows only and named as the whole parameter's (the slot of rows [first, ...)).
  Optimizer(const std::vector<std::pair<std::string, torch::Tensor>>& named_parameters, const OptimizerOptions& options,
            const std::vector<RowRange>& rows = {});

  // One update from the parameters' .grad (an undefined grad counts as zero).
  void step(double lr);

  // Optimizer state under "<hf name>.<slot>" names plus "optimizer.step".
  std::vector<std::pair<std::string, torch::Tensor>> state_tensors() const;
  // Restores from tensors looked up by the names state_tensors() produces: lookup(name, rows)
  // returns those rows of the whole state tensor (rows.whole(): all of it).
  template <typename Lookup>
  void load_state(Lookup&& lookup);

  const std::vector<OptimizedParameter>& parameters() const { return parameters_; }
  const OptimizerOptions& options() const { return options_; }
  int64_t steps_taken() const { return steps_; }
  int64_t state_bytes() const;

 private:
  void muon_update(size_t index, torch::Tensor param, const torch::Tensor& grad, double lr);
  void adamw_update(size_t index, torch::Tensor param, const torch::Tensor& grad, double lr);
  OptimizerOptions options_;
  std::vector<OptimizedParameter> parameters_;
  std::vector<torch::Tensor> momentum_;    // Muon: [param shape] (undefined for AdamW params)
  std::vector<torch::Tensor> exp_avg_;     // AdamW
  std::vector<torch::Tensor> exp_avg_sq_;  // AdamW
  int64_t steps_ = 0;
};

template <typename Lookup>
void Optimizer::load_state(Lookup&& lookup) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const auto& p = parameters_[i];
    if (momentum_[i].defined()) momentum_[i].copy_(lookup(p.name + ".momentum", p.rows));
    if (exp_avg_[i].defined()) {
      exp_avg_[i].copy_(lookup(p.name + ".exp_avg", p.rows));
      exp_avg_sq_[i].copy_(lookup(p.name + ".exp_avg_sq", p.rows));
    }
  }
  steps_ = lookup("optimizer.step", RowRange{}).template item<int64_t>();
}

}  // namespace k2f::train
