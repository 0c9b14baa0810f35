// quant/compressed_tensors_config.cpp: the quantization_config equals K2 Thinking's, written out
// literally from K2_REFERENCE section 5; options change only group_size and ignore; reading it
// back, and each unsupported or missing field named.
#include <gtest/gtest.h>

#include "quant/compressed_tensors_config.h"
#include "test_util.h"

namespace k2f::quant {
namespace {

// K2-Thinking's config.json "quantization_config" (K2_REFERENCE section 5).
const char* const kK2ThinkingQuantizationConfig = R"({
  "config_groups": {
    "group_0": {
      "input_activations": null,
      "output_activations": null,
      "targets": ["Linear"],
      "weights": {
        "actorder": null,
        "block_structure": null,
        "dynamic": false,
        "group_size": 32,
        "num_bits": 4,
        "observer": "minmax",
        "observer_kwargs": {},
        "strategy": "group",
        "symmetric": true,
        "type": "int"
      }
    }
  },
  "format": "pack-quantized",
  "ignore": ["lm_head", "re:.*self_attn.*", "re:.*shared_experts.*", "re:.*mlp\\.(gate|up|gate_up|down)_proj.*"],
  "kv_cache_scheme": null,
  "quant_method": "compressed-tensors",
  "quantization_status": "compressed"
})";

TEST(CompressedTensorsConfig, EqualsK2ThinkingByDefault) {
  const auto expected = nlohmann::json::parse(kK2ThinkingQuantizationConfig);
  const auto built = compressed_tensors_config(PackQuantizedScheme{});
  EXPECT_EQ(built, expected) << built.dump(2);
  EXPECT_EQ(built.dump(), expected.dump());
  EXPECT_EQ(built["ignore"][3].get<std::string>(), "re:.*mlp\\.(gate|up|gate_up|down)_proj.*");
}

TEST(CompressedTensorsConfig, GroupSizeAndIgnoreComeFromOptions) {
  PackQuantizedScheme scheme;
  scheme.group_size = 128;
  scheme.modules.ignore = {"lm_head", "re:.*self_attn.*"};
  auto expected = nlohmann::json::parse(kK2ThinkingQuantizationConfig);
  expected["config_groups"]["group_0"]["weights"]["group_size"] = 128;
  expected["ignore"] = {"lm_head", "re:.*self_attn.*"};
  EXPECT_EQ(compressed_tensors_config(scheme), expected);
  k2f::testing::expect_error([] { compressed_tensors_config(PackQuantizedScheme{0, {}}); }, {"group_size", "0"});
}

TEST(CompressedTensorsConfig, ReadsBackWhatItWrites) {
  const auto scheme = parse_compressed_tensors_config(nlohmann::json::parse(kK2ThinkingQuantizationConfig));
  EXPECT_EQ(scheme.group_size, 32);
  EXPECT_EQ(scheme.modules.targets, std::vector<std::string>{"Linear"});
  EXPECT_EQ(scheme.modules.ignore, QatTargets{}.ignore);
}

TEST(CompressedTensorsConfig, UnsupportedOrMissingFieldsAreNamed) {
  using k2f::testing::expect_error;
  const auto base = nlohmann::json::parse(kK2ThinkingQuantizationConfig);
  auto with = [&](const nlohmann::json::json_pointer& pointer, const nlohmann::json& value) {
    auto config = base;
    config[pointer] = value;
    return config;
  };
  using Ptr = nlohmann::json::json_pointer;
  expect_error([&] { parse_compressed_tensors_config(with(Ptr("/config_groups/group_0/weights/num_bits"), 8)); },
               {"num_bits", "8", "expected 4"});
  expect_error([&] { parse_compressed_tensors_config(with(Ptr("/format"), "float-quantized")); },
               {"format", "float-quantized", "pack-quantized"});
  expect_error([&] { parse_compressed_tensors_config(with(Ptr("/quant_method"), "fp8")); }, {"quant_method", "fp8"});
  expect_error(
      [&] { parse_compressed_tensors_config(with(Ptr("/config_groups/group_0/weights/strategy"), "channel")); },
      {"strategy", "channel"});
  expect_error(
      [&] { parse_compressed_tensors_config(with(Ptr("/config_groups/group_0/weights/symmetric"), false)); },
      {"symmetric", "false"});
  expect_error(
      [&] { parse_compressed_tensors_config(with(Ptr("/config_groups/group_0/weights/group_size"), -4)); },
      {"group_size", "-4"});
  expect_error([&] {
    parse_compressed_tensors_config(with(Ptr("/config_groups/group_0/input_activations"), {{"num_bits", 8}}));
  }, {"input_activations", "weight-only"});
  auto missing = base;
  missing["config_groups"]["group_0"]["weights"].erase("group_size");
  expect_error([&] { parse_compressed_tensors_config(missing); }, {"missing field", "weights.group_size"});
  auto two_groups = base;
  two_groups["config_groups"]["group_1"] = two_groups["config_groups"]["group_0"];
  expect_error([&] { parse_compressed_tensors_config(two_groups); }, {"exactly one", "config_groups"});
}

}  // namespace
}  // namespace k2f::quant
