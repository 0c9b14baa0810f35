#include "quant/quantized_hf_source.h"

#include "base/error.h"
#include "base/log.h"
#include "quant/fp8_block.h"
#include "quant/int4_pack.h"
#include "quant/int4_quantizer.h"

namespace k2f::quant {

namespace {

constexpr const char* kPacked = ".weight_packed";
constexpr const char* kScale = ".weight_scale";
constexpr const char* kShape = ".weight_shape";
constexpr const char* kScaleInv = ".weight_scale_inv";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string strip(const std::string& s, const std::string& suffix) { return s.substr(0, s.size() - suffix.size()); }

// K2-Instruct's quantization_config: {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128], ...}.
int64_t parse_fp8_block_size(const Json& config) {
  if (config.contains("fmt")) {
    check(config["fmt"] == "e4m3", "quantization_config.fmt: expected \"e4m3\", got ", config["fmt"].dump());
  }
  const auto it = config.find("weight_block_size");
  check(it != config.end(), "quantization_config: missing \"weight_block_size\" for quant_method \"fp8\"");
  check(it->is_array() && it->size() == 2 && (*it)[0].is_number_integer() && (*it)[0] == (*it)[1] &&
            (*it)[0].get<int64_t>() > 0,
        "quantization_config.weight_block_size: expected two equal positive integers such as [128, 128], got ",
        it->dump());
  return (*it)[0].get<int64_t>();
}

}  // namespace

const char* weight_format_name(WeightFormat format) {
  switch (format) {
    case WeightFormat::plain: return "plain";
    case WeightFormat::int4_pack_quantized: return "int4 pack-quantized";
    case WeightFormat::fp8_block: return "fp8 block";
  }
  return "?";
}

QuantizedHfSource::QuantizedHfSource(const std::string& dir) : directory_(dir) {
  const Json& config_json = directory_.config_json();
  const auto qc = config_json.find("quantization_config");
  if (qc != config_json.end() && !qc->is_null()) {
    check(qc->is_object() && qc->contains("quant_method"), dir, "/config.json: quantization_config must be an object with quant_method, got ",
          qc->dump());
    const std::string method = qc->at("quant_method").is_string() ? qc->at("quant_method").get<std::string>() : qc->at("quant_method").dump();
    try {
      if (method == "compressed-tensors") {
        int4_scheme_ = parse_compressed_tensors_config(*qc);
        format_ = WeightFormat::int4_pack_quantized;
      } else if (method == "fp8") {
        fp8_block_ = parse_fp8_block_size(*qc);
        format_ = WeightFormat::fp8_block;
      } else {
        fail("quantization_config.quant_method \"", method, "\" is not supported (expected \"compressed-tensors\" or \"fp8\")");
      }
    } catch (const Error& e) {
      fail(dir, "/config.json: ", e.what());
    }
  }
  for (const auto& name : directory_.tensor_names()) {
    if (ends_with(name, kPacked)) {
      check(format_ == WeightFormat::int4_pack_quantized, dir, ": tensor \"", name,
            "\" is packed INT4 but config.json has no compressed-tensors quantization_config");
      const std::string linear = strip(name, kPacked);
      packed_linears_[linear + ".weight"] = linear;
    } else if (ends_with(name, kScaleInv)) {
      check(format_ == WeightFormat::fp8_block, dir, ": tensor \"", name,
            "\" is an FP8 block scale but config.json has no fp8 quantization_config");
      const std::string linear = strip(name, kScaleInv);
      fp8_linears_[linear + ".weight"] = linear;
    }
  }
  log::info(dir, ": ", weight_format_name(format_), " weights (", packed_linears_.size(), " packed INT4 linears, ",
            fp8_linears_.size(), " FP8 block-scaled linears)");
}

std::vector<std::string> QuantizedHfSource::tensor_names() const {
  std::vector<std::string> names;
  for (const auto& name : directory_.tensor_names()) {
    if (ends_with(name, kScaleInv) || ends_with(name, kScale) || ends_with(name, kShape)) {
      const bool part = ends_with(name, kScaleInv) ? fp8_linears_.count(strip(name, kScaleInv) + ".weight")
                        : ends_with(name, kScale)  ? packed_linears_.count(strip(name, kScale) + ".weight")
                                                   : packed_linears_.count(strip(name, kShape) + ".weight");
      if (part) continue;
    }
    names.push_back(ends_with(name, kPacked) ? strip(name, kPacked) + ".weight" : name);
  }
  return names;
}

bool QuantizedHfSource::contains(const std::string& name) const {
  return packed_linears_.count(name) > 0 || directory_.contains(name);
}

std::vector<int64_t> QuantizedHfSource::packed_shape(const std::string& name) {
  const std::string& linear = packed_linears_.at(name);
  const std::string shape_name = linear + kShape;
  check(directory_.contains(shape_name), directory_.dir(), ": \"", linear, kPacked, "\" has no \"", shape_name,
        "\" (pack-quantized linears need their [out, in] shape)");
  const auto shape = directory_.load(shape_name);
  check(shape.dim() == 1 && shape.numel() == 2 && !c10::isFloatingType(shape.scalar_type()), directory_.dir(),
        ": \"", shape_name, "\" must be an integer tensor [2] = [out, in], got ", shape.scalar_type(), " ", shape.sizes());
  const auto values = shape.to(torch::kInt64);
  const std::vector<int64_t> out_in{values[0].item<int64_t>(), values[1].item<int64_t>()};
  check(out_in[0] > 0 && out_in[1] > 0, directory_.dir(), ": \"", shape_name, "\" holds ", torch::IntArrayRef(out_in),
        ", expected positive [out, in]");
  return out_in;
}

PackedInt4Weight QuantizedHfSource::packed(const std::string& name) {
  check(is_packed(name), directory_.dir(), ": \"", name, "\" is not stored packed");
  const std::string& linear = packed_linears_.at(name);
  const auto out_in = packed_shape(name);
  const std::string scale_name = linear + kScale;
  check(directory_.contains(scale_name), directory_.dir(), ": \"", linear, kPacked, "\" has no \"", scale_name, "\"");
  PackedInt4Weight weight{directory_.load(linear + kPacked), directory_.load(scale_name), out_in[1],
                          int4_scheme_.group_size};
  weight.validate(directory_.dir() + ": " + linear);
  check(weight.out_features() == out_in[0], directory_.dir(), ": ", linear, kPacked, " has ", weight.out_features(),
        " rows but ", linear, kShape, " says ", out_in[0]);
  return weight;
}

std::vector<int64_t> QuantizedHfSource::shape(const std::string& name) {
  if (is_packed(name)) return packed_shape(name);
  return directory_.shape(name);
}

torch::ScalarType QuantizedHfSource::dtype(const std::string& name) {
  if (is_packed(name) || fp8_linears_.count(name)) return torch::kFloat32;
  return directory_.dtype(name);
}

torch::Tensor QuantizedHfSource::load(const std::string& name) {
  if (is_packed(name)) {
    const auto weight = packed(name);
    return dequantize_rows(weight, 0, weight.out_features());
  }
  const auto fp8 = fp8_linears_.find(name);
  if (fp8 != fp8_linears_.end()) {
    const auto& entry = directory_.entry(name);
    check(entry.dtype == model::StDtype::F8_E4M3 || entry.dtype == model::StDtype::U8, directory_.dir(), ": \"", name,
          "\" has a weight_scale_inv, so it must be F8_E4M3, got ", model::dtype_name(entry.dtype));
    try {
      return dequantize_fp8_block(directory_.load(name), directory_.load(fp8->second + kScaleInv), fp8_block_);
    } catch (const Error& e) {
      fail(directory_.dir(), ": ", fp8->second, ": ", e.what());
    }
  }
  return directory_.load(name);
}

void QuantizedHfSource::load_into(const std::string& name, torch::Tensor& target) {
  if (is_packed(name) || fp8_linears_.count(name)) {
    WeightSource::load_into(name, target);
  } else {
    directory_.load_into(name, target);
  }
}

model::KimiForCausalLM load_dequantized_model(const std::string& dir) {
  QuantizedHfSource source(dir);
  model::KimiForCausalLM lm(source.config());
  model::load_weights(*lm, source);
  return lm;
}

std::set<std::string> install_packed_linears(QuantizedHfSource& source, torch::nn::Module& model) {
  std::set<std::string> packed_names;
  for (const auto& item : model.named_modules("", false)) {
    auto linear = std::dynamic_pointer_cast<model::LinearImpl>(item.value());
    const std::string name = item.key() + ".weight";
    if (!linear || !source.is_packed(name)) continue;
    const auto weight = source.packed(name);
    check(weight.out_features() == linear->out_features && weight.in_features == linear->in_features,
          source.description(), ": \"", name, "\": expected shape [", linear->out_features, ", ", linear->in_features,
          "], got [", weight.out_features(), ", ", weight.in_features, "]");
    linear->kernel = make_w4a16_kernel(weight);
    linear->weight.set_data(torch::empty({0}, linear->weight.options()));
    packed_names.insert(name);
  }
  return packed_names;
}

int64_t load_inference_model(const std::string& dir, model::KimiForCausalLM& out, bool keep_bf16,
                             const model::ExpertSlice& experts, const model::ModelPart& part) {
  QuantizedHfSource source(dir);
  model::KimiForCausalLM lm(source.config(), experts, part);
  const auto packed_names = install_packed_linears(source, *lm);
  if (keep_bf16) {
    for (const auto& item : lm->named_modules("", false)) {
      const bool holds_matrix = std::dynamic_pointer_cast<model::LinearImpl>(item.value()) ||
                                std::dynamic_pointer_cast<torch::nn::EmbeddingImpl>(item.value());
      const std::string name = item.key() + ".weight";
      if (!holds_matrix || packed_names.count(name) || !source.contains(name) || source.dtype(name) != torch::kBFloat16)
        continue;
      auto weight = item.value()->named_parameters(false)["weight"];
      weight.set_data(torch::empty(weight.sizes(), weight.options().dtype(torch::kBFloat16)));
    }
  }
  model::load_weights(*lm, source, packed_names);
  out = lm;
  return static_cast<int64_t>(packed_names.size());
}

}  // namespace k2f::quant
