// Reading released checkpoints whatever their weight format: plain bf16/fp32, INT4
// compressed-tensors pack-quantized (K2 Thinking: `<linear>.weight_packed`, `.weight_scale`,
// `.weight_shape`), or FP8 e4m3 with 128x128 block scales (K2-Instruct: `<linear>.weight` as
// F8_E4M3 plus `.weight_scale_inv`). The source presents every linear under its logical name
// `<linear>.weight` and dequantises on read, one tensor at a time, so fine-tuning loads master
// weights, export converts between formats, and inference can keep INT4 linears packed.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include "model/hf_checkpoint.h"
#include "quant/compressed_tensors_config.h"
#include "quant/w4a16.h"

namespace k2f::quant {

enum class WeightFormat { plain, int4_pack_quantized, fp8_block };
const char* weight_format_name(WeightFormat format);

class QuantizedHfSource : public model::WeightSource {
 public:
  // Reads config.json's quantization_config (absent: plain) and indexes the quantised linears.
  explicit QuantizedHfSource(const std::string& dir);

  model::HfDirectory& directory() { return directory_; }
  const model::ModelConfig& config() const { return directory_.config(); }
  WeightFormat format() const { return format_; }
  // The INT4 scheme (group size, targets); meaningful for int4_pack_quantized.
  const PackQuantizedScheme& int4_scheme() const { return int4_scheme_; }

  // Whether `name` ("<linear>.weight") is stored packed, and its packed parts, validated.
  bool is_packed(const std::string& name) const { return packed_linears_.count(name) > 0; }
  PackedInt4Weight packed(const std::string& name);

  std::string description() const override { return directory_.dir(); }
  std::vector<std::string> tensor_names() const override;
  bool contains(const std::string& name) const override;
  std::vector<int64_t> shape(const std::string& name) override;
  torch::ScalarType dtype(const std::string& name) override;
  torch::Tensor load(const std::string& name) override;
  // Stored tensors go through the directory (its messages name the index and shard file).
  void load_into(const std::string& name, torch::Tensor& target) override;

 private:
  std::vector<int64_t> packed_shape(const std::string& name);

  model::HfDirectory directory_;
  WeightFormat format_ = WeightFormat::plain;
  PackQuantizedScheme int4_scheme_;
  int64_t fp8_block_ = 128;
  std::map<std::string, std::string> packed_linears_;  // "<linear>.weight" -> "<linear>"
  std::map<std::string, std::string> fp8_linears_;     // "<linear>.weight" -> "<linear>"
};

// Builds the directory's model with every weight loaded as fp32/bf16 master weights (dequantised).
model::KimiForCausalLM load_dequantized_model(const std::string& dir);

// Switches every Linear of `model` whose weight `source` stores packed INT4 to the W4A16 kernel over
// those packed words (frozen, with an input gradient) and releases its own weight; returns their
// "<linear>.weight" names, for load_weights to skip. Errors name a shape that does not fit.
std::set<std::string> install_packed_linears(QuantizedHfSource& source, torch::nn::Module& model);

// Builds the model for inference: INT4 linears keep their packed weights in a W4A16 kernel (their
// fp32 weight is released), everything else is loaded as usual. Plain and FP8 directories load
// dequantised. With `keep_bf16`, Linear and embedding weights the directory stores in bf16 are held
// in bf16 (lossless; half the memory of fp32) rather than fp32. `experts` and `part` build only a
// rank's routed experts and pipeline stage, reading only their tensors. Returns the number of packed
// linears.
int64_t load_inference_model(const std::string& dir, model::KimiForCausalLM& out, bool keep_bf16 = false,
                             const model::ExpertSlice& experts = {}, const model::ModelPart& part = {});

}  // namespace k2f::quant
