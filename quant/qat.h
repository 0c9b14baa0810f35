// INT4 quantisation-aware training applied to a model from outside: each target Linear gets a
// kernel that multiplies by fake_quantize(weight) (STE backward), so the fp32 master weights
// train while every forward pass sees exactly the weights the INT4 export will hold.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>

#include "quant/int4_quantizer.h"
#include "quant/qat_targets.h"

namespace k2f::quant {

struct QatOptions {
  QuantOptions quant;
  QatTargets targets;
};

// Installs fake quantisation on every Linear `options.targets` selects; returns their module
// paths. Errors: no module selected, or a group size that does not divide a target's in_features
// (naming quant.group_size, the module and its width).
std::vector<std::string> apply_qat(torch::nn::Module& model, const QatOptions& options);

// INT4 inference from the current weights: every Linear `options.targets` selects is quantised
// (as the INT4 export quantises it), packed, and switched to the W4A16 kernel; its own weight is
// emptied. The model then computes what `k2forge score` computes on its INT4 export, with the
// packed weights' memory and speed. Used for INT4 rollouts and `bench generate`. Returns the
// module paths; errors as apply_qat's.
std::vector<std::string> pack_for_inference(torch::nn::Module& model, const QatOptions& options);

// Whether `linear` currently runs with fake quantisation.
bool has_fake_quant(const model::LinearImpl& linear);

// The quantisation a fake-quantising kernel applies; nullptr for any other kernel.
const QuantOptions* fake_quant_options_of(const model::LinearKernel& kernel);

// The relative mean absolute quantisation error sum|w - fq(w)| / sum|w| over the quantised weights
// of each decoder layer that has any, as ("layer.<i>", error) in layer order.
std::vector<std::pair<std::string, double>> quantization_error_per_layer(const torch::nn::Module& model,
                                                                         const QatOptions& options);

}  // namespace k2f::quant
