#include "train/optim/optimizer.h"

#include <cmath>

#include "base/error.h"
#include "train/optim/newton_schulz.h"

namespace k2f::train {

void OptimizerOptions::validate() const {
  check(name == "muonclip" || name == "adamw", "optim.name (\"", name, "\") must be \"muonclip\" or \"adamw\"");
  check(weight_decay >= 0, "optim.weight_decay (", weight_decay, ") must be >= 0");
  check(momentum >= 0 && momentum < 1, "optim.momentum (", momentum, ") must be in [0, 1)");
  check(beta1 >= 0 && beta1 < 1, "optim.beta1 (", beta1, ") must be in [0, 1)");
  check(beta2 >= 0 && beta2 < 1, "optim.beta2 (", beta2, ") must be in [0, 1)");
  check(eps > 0, "optim.eps (", eps, ") must be positive");
  check(muon_update_scale > 0, "optim.muon_update_scale (", muon_update_scale, ") must be positive");
  try {
    std::regex check_pattern(adamw_pattern);
  } catch (const std::regex_error& e) {
    fail("optim.adamw_pattern (\"", adamw_pattern, "\") is not a valid regular expression: ", e.what());
  }
}

namespace {
// Optimizer state is fp32 (fp64 for fp64 parameters, as in gradient checks).
torch::ScalarType state_dtype(const torch::Tensor& param) {
  return param.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}
}  // namespace

UpdateRule default_rule(const std::string& name, const torch::Tensor& param) {
  const bool embedding_or_head = name.find("embed_tokens") != std::string::npos || name.rfind("lm_head", 0) == 0;
  return param.dim() == 2 && !embedding_or_head ? UpdateRule::Muon : UpdateRule::AdamW;
}

UpdateRule update_rule(const std::string& name, const torch::Tensor& param, const OptimizerOptions& options) {
  if (options.name == "adamw") return UpdateRule::AdamW;
  if (!options.adamw_pattern.empty() && std::regex_search(name, std::regex(options.adamw_pattern))) return UpdateRule::AdamW;
  return default_rule(name, param);
}

Optimizer::Optimizer(const std::vector<std::pair<std::string, torch::Tensor>>& named_parameters,
                     const OptimizerOptions& options, const std::vector<RowRange>& rows)
    : options_(options) {
  options_.validate();
  check(rows.empty() || rows.size() == named_parameters.size(), "Optimizer: ", rows.size(), " row ranges for ",
        named_parameters.size(), " parameters");
  for (size_t i = 0; i < named_parameters.size(); ++i) {
    const auto& [name, param] = named_parameters[i];
    const UpdateRule rule = update_rule(name, param, options_);
    const RowRange range = rows.empty() ? RowRange{} : rows[i];
    check(range.whole() || rule == UpdateRule::AdamW, "Optimizer: ", name, ": only element-wise rules update a row range");
    parameters_.push_back({name, param, rule, range});
    const auto like = parameters_.back().part(param);
    const auto zeros = [&] { return torch::zeros_like(like, like.options().dtype(state_dtype(like))); };
    momentum_.push_back(rule == UpdateRule::Muon ? zeros() : torch::Tensor());
    exp_avg_.push_back(rule == UpdateRule::AdamW ? zeros() : torch::Tensor());
    exp_avg_sq_.push_back(rule == UpdateRule::AdamW ? zeros() : torch::Tensor());
  }
}

void Optimizer::step(double lr) {
  torch::NoGradGuard no_grad;
  ++steps_;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    auto& p = parameters_[i];
    const auto param = p.part(p.param);
    const auto dtype = state_dtype(param);
    const auto grad = p.param.grad().defined() ? p.part(p.param.grad()).to(dtype)
                                               : torch::zeros_like(param, param.options().dtype(dtype));
    if (p.rule == UpdateRule::Muon) {
      muon_update(i, param, grad, lr);
    } else {
      adamw_update(i, param, grad, lr);
    }
  }
}

void Optimizer::muon_update(size_t i, torch::Tensor param, const torch::Tensor& grad, double lr) {
  momentum_[i].mul_(options_.momentum).add_(grad);  // M = mu*M + G
  const auto direction = options_.nesterov ? grad + options_.momentum * momentum_[i] : momentum_[i];
  const auto orthogonal = newton_schulz5(direction, options_.newton_schulz_dtype).to(param.scalar_type());
  const double rms_match = options_.muon_update_scale * std::sqrt(static_cast<double>(std::max(param.size(0), param.size(1))));
  param.mul_(1.0 - lr * options_.weight_decay);
  param.add_(orthogonal, -lr * rms_match);
}

// `param` is the parameter or a view of its rows: updated in place, the parameter changes.
void Optimizer::adamw_update(size_t i, torch::Tensor param, const torch::Tensor& grad, double lr) {
  exp_avg_[i].mul_(options_.beta1).add_(grad, 1.0 - options_.beta1);
  exp_avg_sq_[i].mul_(options_.beta2).addcmul_(grad, grad, 1.0 - options_.beta2);
  const double bias1 = 1.0 - std::pow(options_.beta1, static_cast<double>(steps_));
  const double bias2 = 1.0 - std::pow(options_.beta2, static_cast<double>(steps_));
  const auto denominator = (exp_avg_sq_[i] / bias2).sqrt_().add_(options_.eps);
  param.mul_(1.0 - lr * options_.weight_decay);
  param.addcdiv_(exp_avg_[i], denominator, -lr / bias1);
}

std::vector<std::pair<std::string, torch::Tensor>> Optimizer::state_tensors() const {
  std::vector<std::pair<std::string, torch::Tensor>> state;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const auto& name = parameters_[i].name;
    if (momentum_[i].defined()) state.emplace_back(name + ".momentum", momentum_[i]);
    if (exp_avg_[i].defined()) {
      state.emplace_back(name + ".exp_avg", exp_avg_[i]);
      state.emplace_back(name + ".exp_avg_sq", exp_avg_sq_[i]);
    }
  }
  state.emplace_back("optimizer.step", torch::tensor(steps_, torch::kInt64));
  return state;
}

int64_t Optimizer::state_bytes() const {
  int64_t bytes = 0;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    for (const auto* t : {&momentum_[i], &exp_avg_[i], &exp_avg_sq_[i]})
      if (t->defined()) bytes += t->numel() * static_cast<int64_t>(t->element_size());
  }
  return bytes;
}

}  // namespace k2f::train
