#include "quant/int4_export.h"

#include <memory>

#include "base/error.h"
#include "quant/int4_pack.h"
#include "quant/qat_targets.h"

namespace k2f::quant {

namespace {

constexpr const char* kWeightSuffix = ".weight";

// The last quantised weight, shared by the producers of its packed words and its scales (they
// are written next to each other, so each weight is quantised once).
struct QuantizedCache {
  std::string name;
  QuantizedWeight weight;
};

const QuantizedWeight& quantized(model::WeightSource& source, const std::string& name, const QuantOptions& options,
                                 QuantizedCache& cache) {
  if (cache.name != name) {
    try {
      cache.weight = quantize(source.load(name).to(torch::kFloat32), options);
    } catch (const Error& e) {
      fail(source.description(), ": tensor \"", name, "\": ", e.what());
    }
    cache.name = name;
  }
  return cache.weight;
}

}  // namespace

std::vector<model::ExportTensor> int4_export_tensors(model::WeightSource& source, const Int4ExportOptions& options) {
  const QatSelector selector(options.scheme.modules);
  const QuantOptions quant{options.scheme.group_size, options.grid};
  auto cache = std::make_shared<QuantizedCache>();
  std::vector<model::ExportTensor> tensors;
  int64_t num_quantized = 0;
  for (const auto& name : model::natural_order(source.tensor_names())) {
    const bool is_weight = name.size() > 7 && name.compare(name.size() - 7, 7, kWeightSuffix) == 0;
    const std::string path = is_weight ? name.substr(0, name.size() - 7) : name;
    if (!is_weight || !is_linear_path(path) || !selector.selects(path)) {
      const auto dtype = model::export_dtype_for(name, source.dtype(name), options.other_dtype);
      tensors.push_back({name, dtype, source.shape(name), [&source, name, dtype] { return source.load(name).to(dtype); }});
      continue;
    }
    const auto shape = source.shape(name);
    check(shape.size() == 2, source.description(), ": tensor \"", name, "\" is selected for INT4 but has shape ",
          torch::IntArrayRef(shape), ", expected [out, in]");
    const int64_t O = shape[0], I = shape[1];
    check(I % quant.group_size == 0, source.description(), ": group size ", quant.group_size,
          " does not divide the in_features (", I, ") of \"", name, "\"");
    tensors.push_back({path + ".weight_packed", torch::kInt32, {O, (I + 7) / 8},
                       [&source, name, quant, cache] { return pack_int4(quantized(source, name, quant, *cache).codes_OI); }});
    tensors.push_back({path + ".weight_scale", torch::kBFloat16, {O, I / quant.group_size},
                       [&source, name, quant, cache] { return quantized(source, name, quant, *cache).scales_OG; }});
    tensors.push_back({path + ".weight_shape", torch::kInt32, {2},
                       [O, I] { return torch::tensor({O, I}, torch::kInt64).to(torch::kInt32); }});
    ++num_quantized;
  }
  check(num_quantized > 0, source.description(), ": the INT4 targets/ignore lists select no linear weight to quantise");
  return tensors;
}

Json int4_export_config(const model::ModelConfig& config, const PackQuantizedScheme& scheme) {
  Json config_json = config.to_hf_json();
  config_json["torch_dtype"] = "bfloat16";
  config_json["quantization_config"] = compressed_tensors_config(scheme);
  return config_json;
}

}  // namespace k2f::quant
