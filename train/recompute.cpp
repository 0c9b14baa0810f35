#include "train/recompute.h"

#include <torch/autograd.h>
#include <torch/custom_class.h>

namespace k2f::train {
namespace {

// What the backward needs to re-run the layer, kept alive by the autograd graph.
struct LayerCall : torch::CustomClassHolder {
  model::DecoderLayer layer{nullptr};
  model::SequenceContext context;
};

class RecomputedLayer : public torch::autograd::Function<RecomputedLayer> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_BTD,
                               const c10::intrusive_ptr<LayerCall>& call) {
    ctx->save_for_backward({x_BTD});
    ctx->saved_data["call"] = c10::IValue::make_capsule(call);
    return call->layer->forward(x_BTD, call->context);  // grad mode is off inside Function::forward
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto call = c10::static_intrusive_pointer_cast<LayerCall>(ctx->saved_data["call"].toCapsule());
    auto x_BTD = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    torch::AutoGradMode enable_grad(true);
    const auto y_BTD = call->layer->forward(x_BTD, call->context);
    torch::autograd::backward({y_BTD}, {grad_outputs[0]});
    return {x_BTD.grad(), torch::Tensor()};
  }
};

}  // namespace

model::LayerRunner recomputing_layer_runner() {
  return [](model::DecoderLayer& layer, const torch::Tensor& x_BTD, const model::SequenceContext& context) {
    if (!torch::GradMode::is_enabled()) return layer->forward(x_BTD, context);
    auto call = c10::make_intrusive<LayerCall>();
    call->layer = layer;
    call->context = context;
    return RecomputedLayer::apply(x_BTD, call);
  };
}

}  // namespace k2f::train
