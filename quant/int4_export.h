// The INT4 export: the tensors of a pack-quantized HF directory exactly as K2 Thinking ships them.
// Each linear the scheme selects becomes `<p>.weight_packed` (int32 [out, in/8]), `<p>.weight_scale`
// (bf16 [out, in/group]) and `<p>.weight_shape` (int32 [2]), quantised with the same arithmetic as
// QAT's fake quantisation; every other floating tensor is bf16 (router biases fp32). Tensors are
// produced one at a time from a WeightSource, so exporting never holds more than a shard.
#pragma once

#include <vector>

#include "model/config.h"
#include "model/hf_export.h"
#include "quant/compressed_tensors_config.h"
#include "quant/int4_quantizer.h"

namespace k2f::quant {

struct Int4ExportOptions {
  PackQuantizedScheme scheme;  // group size and which linears (K2 Thinking's by default)
  Grid grid = Grid::k2;
  torch::ScalarType other_dtype = torch::kBFloat16;
};

// The tensor list for model::write_hf_directory. Errors: nothing selected, a selected weight that
// is not 2-D, or a group size that does not divide its in_features (naming the tensor).
std::vector<model::ExportTensor> int4_export_tensors(model::WeightSource& source, const Int4ExportOptions& options);

// config.json of the export: the model config, torch_dtype bfloat16 and K2 Thinking's quantization_config.
Json int4_export_config(const model::ModelConfig& config, const PackQuantizedScheme& scheme);

}  // namespace k2f::quant
