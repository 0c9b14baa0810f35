// The `quantization_config` block of config.json for an INT4 pack-quantized checkpoint, built
// exactly as K2 Thinking ships it (K2_REFERENCE section 5), and read back with the checks an
// importer needs (only 4-bit symmetric int groups in pack-quantized format are understood).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "quant/qat_targets.h"

namespace k2f::quant {

// What a pack-quantized checkpoint's config says: the group size and which linears it covers
// (defaults: K2 Thinking's, group 32, routed experts only).
struct PackQuantizedScheme {
  int64_t group_size = 32;
  QatTargets modules;
};

// K2 Thinking's quantization_config with group_size, targets and ignore from `scheme`.
nlohmann::json compressed_tensors_config(const PackQuantizedScheme& scheme);

// Reads a quantization_config back. Errors name the field and the value found: quant_method not
// "compressed-tensors", format not "pack-quantized", not exactly one config group, num_bits not 4,
// type not "int", not symmetric, strategy not "group", a non-positive group_size, activation
// quantisation, or a missing field.
PackQuantizedScheme parse_compressed_tensors_config(const nlohmann::json& config);

}  // namespace k2f::quant
