// The INT4 fake-quantisation autograd function (see fake_quant.h). Forward shares its arithmetic
// with quantize()/dequantize(), so QAT and export cannot drift apart.
#include "quant/fake_quant.h"

#include <torch/autograd.h>

namespace k2f::quant {

namespace {

class FakeQuantInt4 : public torch::autograd::Function<FakeQuantInt4> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* /*ctx*/, const torch::Tensor& w_OI,
                               int64_t group_size, int64_t grid) {
    const auto groups = detail::quantize_groups(w_OI, QuantOptions{group_size, static_cast<Grid>(grid)});
    const auto dequant_OGg = groups.codes_OGg * groups.scales_OG.to(torch::kFloat32).unsqueeze(-1);
    return dequant_OGg.reshape(w_OI.sizes()).to(w_OI.scalar_type());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* /*ctx*/,
                                                 torch::autograd::variable_list grad_outputs) {
    // Straight-through: d(fake_quant(w))/dw is taken as the identity.
    return {grad_outputs[0], torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor fake_quantize(const torch::Tensor& w_OI, const QuantOptions& options) {
  return FakeQuantInt4::apply(w_OI, options.group_size, static_cast<int64_t>(options.grid));
}

}  // namespace k2f::quant
