// Writing and reading compressed-tensors' quantization_config for INT4 pack-quantized weights
// (see compressed_tensors_config.h).
#include "quant/compressed_tensors_config.h"

#include "base/error.h"

namespace k2f::quant {

namespace {

// config[key], or an error naming the missing field.
const nlohmann::json& required_field(const nlohmann::json& object, const std::string& key, const std::string& where) {
  check(object.is_object(), "quantization_config: ", where, " must be an object, got ", object.dump());
  const auto it = object.find(key);
  check(it != object.end(), "quantization_config: missing field ", where, ".", key);
  return *it;
}

std::vector<std::string> string_list(const nlohmann::json& value, const std::string& where) {
  check(value.is_array(), "quantization_config: ", where, " must be a list of strings, got ", value.dump());
  std::vector<std::string> out;
  for (const auto& item : value) {
    check(item.is_string(), "quantization_config: ", where, " must be a list of strings, got ", value.dump());
    out.push_back(item.get<std::string>());
  }
  return out;
}

void expect_value(const nlohmann::json& object, const std::string& key, const nlohmann::json& expected,
                  const std::string& where) {
  const auto& found = required_field(object, key, where);
  check(found == expected, "quantization_config: unsupported ", where, ".", key, " ", found.dump(), " (expected ",
        expected.dump(), ")");
}

}  // namespace

nlohmann::json compressed_tensors_config(const PackQuantizedScheme& scheme) {
  check(scheme.group_size > 0, "quantization_config: group_size must be positive, got ", scheme.group_size);
  const nlohmann::json weights = {
      {"num_bits", 4},          {"type", "int"},         {"symmetric", true},
      {"strategy", "group"},    {"group_size", scheme.group_size},
      {"dynamic", false},       {"observer", "minmax"},  {"observer_kwargs", nlohmann::json::object()},
      {"actorder", nullptr},    {"block_structure", nullptr}};
  const nlohmann::json group_0 = {{"targets", scheme.modules.targets},
                                  {"input_activations", nullptr},
                                  {"output_activations", nullptr},
                                  {"weights", weights}};
  return {{"quant_method", "compressed-tensors"},
          {"format", "pack-quantized"},
          {"quantization_status", "compressed"},
          {"kv_cache_scheme", nullptr},
          {"config_groups", {{"group_0", group_0}}},
          {"ignore", scheme.modules.ignore}};
}

PackQuantizedScheme parse_compressed_tensors_config(const nlohmann::json& config) {
  expect_value(config, "quant_method", "compressed-tensors", "quantization_config");
  expect_value(config, "format", "pack-quantized", "quantization_config");
  const auto& groups = required_field(config, "config_groups", "quantization_config");
  check(groups.is_object() && groups.size() == 1,
        "quantization_config: expected exactly one entry in config_groups, got ", groups.dump());
  const std::string group_name = groups.begin().key();
  const std::string where = "config_groups." + group_name;
  const auto& group = groups.begin().value();
  for (const char* activations : {"input_activations", "output_activations"}) {
    const auto it = group.is_object() ? group.find(activations) : group.end();
    check(it == group.end() || it->is_null(), "quantization_config: unsupported ", where, ".", activations, " ",
          it == group.end() ? std::string() : it->dump(), " (only weight-only quantisation is supported)");
  }
  const auto& weights = required_field(group, "weights", where);
  const std::string weights_where = where + ".weights";
  expect_value(weights, "num_bits", 4, weights_where);
  expect_value(weights, "type", "int", weights_where);
  expect_value(weights, "symmetric", true, weights_where);
  expect_value(weights, "strategy", "group", weights_where);
  const auto& group_size = required_field(weights, "group_size", weights_where);
  check(group_size.is_number_integer() && group_size.get<int64_t>() > 0, "quantization_config: ", weights_where,
        ".group_size must be a positive integer, got ", group_size.dump());

  PackQuantizedScheme scheme;
  scheme.group_size = group_size.get<int64_t>();
  scheme.modules.targets = string_list(required_field(group, "targets", where), where + ".targets");
  const auto ignore = config.find("ignore");
  scheme.modules.ignore = ignore == config.end() || ignore->is_null() ? std::vector<std::string>{}
                                                               : string_list(*ignore, "quantization_config.ignore");
  return scheme;
}

}  // namespace k2f::quant
