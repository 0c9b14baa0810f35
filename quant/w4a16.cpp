#include "quant/w4a16.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "base/error.h"
#include "quant/w4a16_direct.h"

namespace k2f::quant {

namespace {

constexpr int64_t kCodesPerWord = 8;
constexpr int64_t kTileBytes = 256 * 1024;  // one fp32 tile stays in L2

// Dequantises rows [row_begin, row_begin + rows) into out (fp32, row-major [rows, I]).
void dequantize_into(const PackedInt4Weight& weight, const float* scales, int64_t row_begin, int64_t rows, float* out) {
  const int64_t I = weight.in_features, W = weight.packed_OW.size(1), G = I / weight.group_size;
  const int32_t* packed = weight.packed_OW.data_ptr<int32_t>();
  float table[16];
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* words = packed + (row_begin + r) * W;
    float* row = out + r * I;
    for (int64_t g = 0; g < G; ++g) {
      const float scale = scales[(row_begin + r) * G + g];
      for (int u = 0; u < 16; ++u) table[u] = static_cast<float>(u - 8) * scale;
      const int64_t begin = g * weight.group_size, end = begin + weight.group_size;
      for (int64_t i = begin; i < end; ++i) {
        const uint32_t word = static_cast<uint32_t>(words[i / kCodesPerWord]);
        row[i] = table[(word >> (4 * (i % kCodesPerWord))) & 0xF];
      }
    }
  }
}

class W4A16Kernel : public model::LinearKernel {
 public:
  explicit W4A16Kernel(PackedInt4Weight weight) : weight_(std::move(weight)) {}
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& /*weight*/) const override {
    return w4a16_linear(x, weight_);
  }
  const PackedInt4Weight& weight() const { return weight_; }

 private:
  PackedInt4Weight weight_;
};

}  // namespace

void PackedInt4Weight::validate(const std::string& where) const {
  check(packed_OW.dim() == 2 && packed_OW.scalar_type() == torch::kInt32, where, ": weight_packed must be int32 [out, in/8], got ",
        packed_OW.scalar_type(), " ", packed_OW.sizes());
  check(group_size > 0 && in_features > 0 && in_features % group_size == 0, where, ": group size ", group_size,
        " does not divide in_features ", in_features);
  const int64_t words = (in_features + kCodesPerWord - 1) / kCodesPerWord;
  check(packed_OW.size(1) == words, where, ": weight_packed has ", packed_OW.size(1), " words per row, expected ",
        words, " for in_features ", in_features);
  check(scales_OG.dim() == 2 && c10::isFloatingType(scales_OG.scalar_type()), where,
        ": weight_scale must be a floating [out, in/group] tensor, got ", scales_OG.scalar_type(), " ", scales_OG.sizes());
  check(scales_OG.size(0) == packed_OW.size(0) && scales_OG.size(1) == in_features / group_size, where,
        ": weight_scale has shape ", scales_OG.sizes(), ", expected [", packed_OW.size(0), ", ", in_features / group_size,
        "] (out_features, in_features / group_size ", group_size, ")");
}

uint64_t PackedInt4Weight::bytes() const {
  return static_cast<uint64_t>(packed_OW.numel() * 4 + scales_OG.numel() * scales_OG.element_size());
}

torch::Tensor dequantize_rows(const PackedInt4Weight& weight, int64_t row_begin, int64_t rows) {
  const auto scales = weight.scales_OG.to(torch::kFloat32).contiguous();
  auto out = torch::empty({rows, weight.in_features}, torch::kFloat32);
  dequantize_into(weight, scales.data_ptr<float>(), row_begin, rows, out.data_ptr<float>());
  return out;
}

torch::Tensor w4a16_linear_tiled(const torch::Tensor& x, const PackedInt4Weight& weight) {
  const int64_t O = weight.out_features(), I = weight.in_features;
  auto sizes = x.sizes().vec();
  sizes.back() = O;
  const auto scales = weight.scales_OG.to(torch::kFloat32).contiguous();
  // fp32 (fp64 for fp64 x) whatever x's dtype, so every path computes the same exact product.
  const auto compute = x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  const auto x_NI = x.reshape({-1, I}).to(compute).contiguous();
  auto y_NO = torch::empty({x_NI.size(0), O}, x_NI.options());
  const int64_t tile_rows = std::max<int64_t>(16, std::min<int64_t>(O, kTileBytes / (4 * I)));
  const int64_t num_tiles = (O + tile_rows - 1) / tile_rows;
  at::parallel_for(0, num_tiles, 1, [&](int64_t tile_begin, int64_t tile_end) {
    auto tile = torch::empty({tile_rows, I}, torch::kFloat32);
    for (int64_t t = tile_begin; t < tile_end; ++t) {
      const int64_t row_begin = t * tile_rows, rows = std::min(tile_rows, O - row_begin);
      dequantize_into(weight, scales.data_ptr<float>(), row_begin, rows, tile.data_ptr<float>());
      // A column block of y (leading dimension O): the same x @ W^T product the dense layer runs.
      auto out = y_NO.narrow(1, row_begin, rows);
      torch::mm_out(out, x_NI, tile.narrow(0, 0, rows).to(compute).t());
    }
  });
  return y_NO.reshape(sizes).to(x.scalar_type());
}

namespace {

// y = x W^T with W frozen and packed; backward returns only the input gradient, grad_y W, built
// from tiles of dequantised rows (the whole dequantised matrix never exists, as in forward).
class W4A16Function : public torch::autograd::Function<W4A16Function> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& packed_OW, const torch::Tensor& scales_OG, int64_t in_features,
                               int64_t group_size) {
    ctx->save_for_backward({packed_OW, scales_OG});
    ctx->saved_data["in_features"] = in_features;
    ctx->saved_data["group_size"] = group_size;
    ctx->saved_data["x_dtype"] = x.scalar_type();
    return w4a16_linear(x, PackedInt4Weight{packed_OW, scales_OG, in_features, group_size});
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const PackedInt4Weight weight{saved[0], saved[1], ctx->saved_data["in_features"].toInt(),
                                  ctx->saved_data["group_size"].toInt()};
    const auto x_dtype = ctx->saved_data["x_dtype"].toScalarType();
    const auto compute = x_dtype == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
    const int64_t O = weight.out_features(), I = weight.in_features;
    const auto grad_NO = grads[0].reshape({-1, O}).to(compute);
    auto grad_NI = torch::zeros({grad_NO.size(0), I}, grad_NO.options());
    const int64_t tile_rows = std::max<int64_t>(16, std::min<int64_t>(O, kTileBytes / (4 * I)));
    for (int64_t row_begin = 0; row_begin < O; row_begin += tile_rows) {
      const int64_t rows = std::min(tile_rows, O - row_begin);
      grad_NI.addmm_(grad_NO.narrow(1, row_begin, rows), dequantize_rows(weight, row_begin, rows).to(compute));
    }
    auto sizes = grads[0].sizes().vec();
    sizes.back() = I;
    return {grad_NI.reshape(sizes).to(x_dtype), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor dequantize_with_tensor_ops(const PackedInt4Weight& weight) {
  const int64_t O = weight.out_features(), I = weight.in_features;
  const auto shifts = torch::arange(0, 4 * kCodesPerWord, 4, weight.packed_OW.options());
  // The low 4 bits after an arithmetic shift are those of a logical one: the code of each position.
  const auto codes_OI = weight.packed_OW.unsqueeze(-1).bitwise_right_shift(shifts).bitwise_and(0xF).reshape({O, -1}).narrow(1, 0, I);
  const auto scales = weight.scales_OG.to(torch::kFloat32).unsqueeze(-1);
  return ((codes_OI.to(torch::kFloat32) - 8).reshape({O, -1, weight.group_size}) * scales).reshape({O, I});
}

torch::Tensor w4a16_linear_dequantized(const torch::Tensor& x, const PackedInt4Weight& weight) {
  check(x.size(-1) == weight.in_features, "W4A16 linear: input has ", x.size(-1), " features, the weight expects ",
        weight.in_features);
  const auto compute = x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : x.scalar_type();
  const auto w_OI = dequantize_with_tensor_ops(weight).to(x.device(), compute);
  return torch::matmul(x.to(compute), w_OI.t()).to(x.scalar_type());
}

torch::Tensor w4a16_linear(const torch::Tensor& x, const PackedInt4Weight& weight) {
  // No packed kernel off the CPU yet: the layer's weight is dequantised for this product only, and
  // autograd gives x its gradient through the constant weight.
  if (!x.device().is_cpu() || !weight.packed_OW.device().is_cpu()) return w4a16_linear_dequantized(x, weight);
  if (torch::GradMode::is_enabled() && x.requires_grad()) {
    // Adapters or earlier layers train through this frozen layer (LoRA on an INT4 base).
    return W4A16Function::apply(x, weight.packed_OW, weight.scales_OG, weight.in_features, weight.group_size);
  }
  check(x.size(-1) == weight.in_features, "W4A16 linear: input has ", x.size(-1), " features, the weight expects ",
        weight.in_features);
  const auto kernel = direct::choose(weight, x.scalar_type());
  if (kernel == direct::Kernel::none) return w4a16_linear_tiled(x, weight);
  const int64_t I = weight.in_features;
  auto sizes = x.sizes().vec();
  sizes.back() = weight.out_features();
  return direct::linear(x.reshape({-1, I}), weight, kernel).reshape(sizes).to(x.scalar_type());
}

std::shared_ptr<model::LinearKernel> make_w4a16_kernel(PackedInt4Weight weight) {
  weight.validate("W4A16 kernel");
  weight.packed_OW = weight.packed_OW.contiguous();
  return std::make_shared<W4A16Kernel>(std::move(weight));
}

const PackedInt4Weight* packed_weight_of(const model::LinearKernel& kernel) {
  const auto* w4a16 = dynamic_cast<const W4A16Kernel*>(&kernel);
  return w4a16 ? &w4a16->weight() : nullptr;
}

}  // namespace k2f::quant
