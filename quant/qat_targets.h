// Which linear weights INT4 QAT quantises, decided the way compressed-tensors does: a module is
// quantised when it matches one of `targets` (a class name such as "Linear", an exact module
// path, or a "re:" regex) and none of `ignore` (exact paths or "re:" regexes, matched like
// Python's re.match: anchored at the start). Module paths are the HF ones, e.g.
// "model.layers.3.mlp.experts.5.up_proj" and "lm_head".
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>

#include "model/layers.h"

namespace k2f::quant {

struct QatTargets {
  std::vector<std::string> targets{"Linear"};
  // K2 Thinking's ignore list: attention, shared experts, dense MLPs and lm_head stay bf16, so
  // only the routed experts are quantised (the router mlp.gate is not a Linear here).
  std::vector<std::string> ignore{"lm_head", "re:.*self_attn.*", "re:.*shared_experts.*",
                                  "re:.*mlp\\.(gate|up|gate_up|down)_proj.*"};
};

// True when `name` matches `pattern`: equality, or for "re:<regex>" a match anchored at the start
// of `name` (Python re.match). A malformed regex is an error naming it.
bool matches_pattern(const std::string& name, const std::string& pattern);

// The compiled form of a QatTargets, for testing many module paths.
class QatSelector {
 public:
  explicit QatSelector(const QatTargets& targets);
  // Whether the Linear module at `linear_path` is quantised.
  bool selects(const std::string& linear_path) const;

 private:
  struct Compiled;
  std::shared_ptr<const Compiled> compiled_;
};

// Whether an HF module path names one of the model's Linear layers (by its last component: the
// projections and lm_head; the router "mlp.gate" and the embedding are not Linear). Lets export
// and import decide from tensor names alone what the module walk decides from types.
bool is_linear_path(const std::string& module_path);

// The k2f::model::Linear modules QAT quantises, as (module path, module) in module order.
std::vector<std::pair<std::string, std::shared_ptr<model::LinearImpl>>> qat_target_linears(
    const torch::nn::Module& model, const QatTargets& targets);

// The HF weight names of those modules ("<path>.weight"), in module order.
std::vector<std::string> qat_target_weights(const torch::nn::Module& model, const QatTargets& targets);

}  // namespace k2f::quant
