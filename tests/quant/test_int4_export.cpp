// quant/int4_export.cpp and quant/quantized_hf_source.cpp: an INT4 export holds exactly the
// compressed-tensors layout (names, dtypes, shapes, K2 Thinking's quantization_config), reads back
// to the fake-quantised weights bit for bit, and scores like the QAT model through both the W4A16
// kernel and dequantisation; FP8 block-scaled directories dequantise on read; every malformed
// directory a user can hand us fails with a message naming the tensor or field.
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>

#include "base/json_io.h"
#include "model/hf_checkpoint.h"
#include "model/hf_export.h"
#include "model/kimi_model.h"
#include "model/tiny_config.h"
#include "quant/fake_quant.h"
#include "quant/fp8_block.h"
#include "quant/int4_export.h"
#include "quant/qat.h"
#include "quant/quantized_hf_source.h"
#include "test_util.h"

namespace k2f::quant {
namespace {
namespace fs = std::filesystem;

constexpr int64_t kGroup = 16;  // divides the tiny model's widths (32 and 16)

model::KimiForCausalLM tiny_model() {
  model::KimiForCausalLM lm(testing::tiny_config());
  model::init_weights(lm, 17);
  lm->compute_dtype = torch::kFloat32;
  return lm;
}

void export_int4(const model::KimiForCausalLM& lm, const std::string& dir, uint64_t max_shard_bytes = 1 << 20) {
  model::ModuleSource source(*lm);
  Int4ExportOptions options;
  options.scheme.group_size = kGroup;
  model::write_hf_directory(int4_export_tensors(source, options), int4_export_config(lm->model->config, options.scheme),
                            dir, max_shard_bytes);
}

bool is_expert(const std::string& name) { return name.find(".mlp.experts.") != std::string::npos; }

TEST(Int4Export, LayoutDtypesShapesAndConfig) {
  testing::ScratchDir scratch("int4-layout");
  const auto lm = tiny_model();
  export_int4(lm, scratch / "out", 8 << 10);  // small shards: several files plus an index
  model::HfDirectory dir(scratch / "out");
  int64_t packed = 0;
  for (const auto& [name, master] : model::named_state(*lm)) {
    const std::string linear = name.substr(0, name.size() - 7);
    if (is_expert(name)) {
      EXPECT_FALSE(dir.contains(name)) << name;
      const auto& words = dir.entry(linear + ".weight_packed");
      EXPECT_EQ(words.dtype, model::StDtype::I32);
      EXPECT_EQ(words.shape, (std::vector<int64_t>{master.size(0), master.size(1) / 8}));
      const auto& scales = dir.entry(linear + ".weight_scale");
      EXPECT_EQ(scales.dtype, model::StDtype::BF16);
      EXPECT_EQ(scales.shape, (std::vector<int64_t>{master.size(0), master.size(1) / kGroup}));
      const auto shape = dir.load(linear + ".weight_shape");
      EXPECT_EQ(shape.scalar_type(), torch::kInt32);
      EXPECT_EQ(shape[0].item<int64_t>(), master.size(0));
      EXPECT_EQ(shape[1].item<int64_t>(), master.size(1));
      ++packed;
    } else {
      const bool bias = name.find("e_score_correction_bias") != std::string::npos;
      EXPECT_EQ(dir.entry(name).dtype, bias ? model::StDtype::F32 : model::StDtype::BF16) << name;
    }
  }
  const auto config = testing::tiny_config();
  EXPECT_EQ(packed, (config.num_hidden_layers - config.first_k_dense_replace) * config.n_routed_experts * 3);
  EXPECT_GT(dir.tensor_names().size(), 0u);
  EXPECT_TRUE(fs::exists(scratch / "out/model.safetensors.index.json"));

  // K2 Thinking's quantization_config, written out by hand from its config.json (group size aside).
  const Json expected = Json::parse(R"({
    "quant_method": "compressed-tensors", "format": "pack-quantized", "quantization_status": "compressed",
    "kv_cache_scheme": null,
    "config_groups": {"group_0": {
      "targets": ["Linear"], "input_activations": null, "output_activations": null,
      "weights": {"num_bits": 4, "type": "int", "symmetric": true, "strategy": "group", "group_size": 16,
                  "dynamic": false, "observer": "minmax", "observer_kwargs": {}, "actorder": null,
                  "block_structure": null}}},
    "ignore": ["lm_head", "re:.*self_attn.*", "re:.*shared_experts.*", "re:.*mlp\\.(gate|up|gate_up|down)_proj.*"]
  })");
  EXPECT_EQ(dir.config_json().at("quantization_config"), expected);
  EXPECT_EQ(dir.config_json().at("torch_dtype"), "bfloat16");
}

TEST(Int4Export, ReadsBackAsFakeQuantisedWeightsAndScoresLikeTheQatModel) {
  testing::ScratchDir scratch("int4-read");
  const auto lm = tiny_model();
  export_int4(lm, scratch / "out");

  QuantizedHfSource source(scratch / "out");
  EXPECT_EQ(source.format(), WeightFormat::int4_pack_quantized);
  EXPECT_EQ(source.int4_scheme().group_size, kGroup);
  const QuantOptions quant{kGroup, Grid::k2};
  for (const auto& [name, master] : model::named_state(*lm)) {
    ASSERT_TRUE(source.contains(name)) << name;
    EXPECT_EQ(source.is_packed(name), is_expert(name)) << name;
    const auto expected = is_expert(name) ? fake_quantize(master.detach(), quant)
                                          : master.detach().to(model::export_dtype_for(name, torch::kFloat32, torch::kBFloat16));
    EXPECT_TRUE(torch::equal(source.load(name), expected)) << name;
  }

  // The QAT model as the format stores it: fake-quantised experts, everything else bf16-rounded.
  auto qat = tiny_model();
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, tensor] : model::named_state(*qat)) {
      if (!is_expert(name) && name.find("e_score_correction_bias") == std::string::npos)
        tensor.copy_(tensor.to(torch::kBFloat16));
    }
  }
  apply_qat(*qat, QatOptions{quant, QatTargets{}});
  torch::manual_seed(4);  // Debian's LibTorch seeds its default generator randomly
  const auto tokens = torch::randint(0, testing::tiny_config().vocab_size, {2, 10});
  torch::NoGradGuard no_grad;
  const auto expected = qat->forward(tokens);

  auto dequantized = load_dequantized_model(scratch / "out");
  dequantized->compute_dtype = torch::kFloat32;
  EXPECT_LT((dequantized->forward(tokens) - expected).abs().max().item<double>(), 1e-6);

  model::KimiForCausalLM packed{nullptr};
  EXPECT_EQ(load_inference_model(scratch / "out", packed), 24);
  packed->compute_dtype = torch::kFloat32;
  EXPECT_LT((packed->forward(tokens) - expected).abs().max().item<double>(), 1e-6);
  // The experts really are packed: their fp32 weights are gone.
  EXPECT_EQ(packed->named_parameters()["model.layers.1.mlp.experts.0.up_proj.weight"].numel(), 0);

  // keep_bf16 holds the bf16-stored Linear and embedding weights in bf16 and computes the same logits.
  model::KimiForCausalLM half{nullptr};
  EXPECT_EQ(load_inference_model(scratch / "out", half, /*keep_bf16=*/true), 24);
  half->compute_dtype = torch::kFloat32;
  const auto params = half->named_parameters();
  EXPECT_EQ(params["model.layers.1.self_attn.o_proj.weight"].scalar_type(), torch::kBFloat16);
  EXPECT_EQ(params["model.embed_tokens.weight"].scalar_type(), torch::kBFloat16);
  EXPECT_EQ(params["lm_head.weight"].scalar_type(), torch::kBFloat16);
  EXPECT_EQ(params["model.norm.weight"].scalar_type(), torch::kFloat32);
  EXPECT_EQ(params["model.layers.1.mlp.gate.weight"].scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(half->forward(tokens), packed->forward(tokens)));
}

// Rewrites a directory's shards: `edit` returns the replacement of a tensor, or nullopt to drop it.
void rewrite_tensors(const std::string& dir,
                     const std::function<std::optional<torch::Tensor>(const std::string&, const torch::Tensor&)>& edit) {
  const std::string index_path = dir + "/model.safetensors.index.json";
  Json index = read_json_file(index_path);
  std::set<std::string> files;
  for (const auto& item : index["weight_map"].items()) files.insert(item.value().get<std::string>());
  for (const auto& file : files) {
    std::vector<std::pair<std::string, torch::Tensor>> kept;
    {
      model::SafetensorsFile shard(dir + "/" + file);
      for (const auto& name : shard.names()) {
        auto replacement = edit(name, shard.load(name));
        if (replacement) {
          kept.emplace_back(name, *replacement);
        } else {
          index["weight_map"].erase(name);
        }
      }
    }
    model::write_safetensors(dir + "/" + file, kept);
  }
  write_text_file_atomic(index_path, index.dump(2));
}

void edit_weights_config(const std::string& dir, const std::string& key, const Json& value) {
  Json config = read_json_file(dir + "/config.json");
  config["quantization_config"]["config_groups"]["group_0"]["weights"][key] = value;
  write_text_file_atomic(dir + "/config.json", config.dump(2));
}

TEST(Int4Export, MalformedDirectoriesFailWithTheirFault) {
  testing::ScratchDir scratch("int4-bad");
  const auto lm = tiny_model();
  const std::string target = "model.layers.1.mlp.experts.3.up_proj";
  auto fresh = [&](const std::string& name) {
    export_int4(lm, scratch / name);
    return scratch / name;
  };

  const auto scale_mismatch = fresh("scale");
  rewrite_tensors(scale_mismatch, [&](const std::string& name, const torch::Tensor& t) -> std::optional<torch::Tensor> {
    return name == target + ".weight_scale" ? t.narrow(1, 0, 1).contiguous() : t;
  });
  testing::expect_error([&] { load_dequantized_model(scale_mismatch); },
                        {target, "weight_scale has shape [16, 1]", "expected [16, 2]"});

  const auto packed_mismatch = fresh("packed");
  rewrite_tensors(packed_mismatch, [&](const std::string& name, const torch::Tensor& t) -> std::optional<torch::Tensor> {
    return name == target + ".weight_packed" ? t.narrow(1, 0, 3).contiguous() : t;
  });
  testing::expect_error([&] { load_dequantized_model(packed_mismatch); }, {target, "3 words per row, expected 4"});

  const auto no_shape = fresh("noshape");
  rewrite_tensors(no_shape, [&](const std::string& name, const torch::Tensor& t) -> std::optional<torch::Tensor> {
    if (name == target + ".weight_shape") return std::nullopt;
    return t;
  });
  testing::expect_error([&] { load_dequantized_model(no_shape); }, {"has no \"" + target + ".weight_shape\""});

  const auto bad_group = fresh("group");
  edit_weights_config(bad_group, "group_size", 24);
  testing::expect_error([&] { load_dequantized_model(bad_group); }, {"group size 24 does not divide in_features"});

  const auto bits = fresh("bits");
  edit_weights_config(bits, "num_bits", 8);
  testing::expect_error([&] { QuantizedHfSource{bits}; }, {"config.json", "num_bits", "8"});

  const auto strategy = fresh("strategy");
  edit_weights_config(strategy, "strategy", "channel");
  testing::expect_error([&] { QuantizedHfSource{strategy}; }, {"config.json", "strategy", "channel"});

  const auto format = fresh("format");
  Json config = read_json_file(format + "/config.json");
  config["quantization_config"]["format"] = "int-quantized";
  write_text_file_atomic(format + "/config.json", config.dump(2));
  testing::expect_error([&] { QuantizedHfSource{format}; }, {"config.json", "format", "int-quantized"});

  const auto method = fresh("method");
  config = read_json_file(method + "/config.json");
  config["quantization_config"]["quant_method"] = "awq";
  write_text_file_atomic(method + "/config.json", config.dump(2));
  testing::expect_error([&] { QuantizedHfSource{method}; }, {"quant_method \"awq\" is not supported"});

  const auto unconfigured = fresh("noconfig");
  config = read_json_file(unconfigured + "/config.json");
  config.erase("quantization_config");
  write_text_file_atomic(unconfigured + "/config.json", config.dump(2));
  testing::expect_error([&] { QuantizedHfSource{unconfigured}; }, {"packed INT4 but config.json has no compressed-tensors"});
}

TEST(Int4Export, GroupSizeNotDividingIsRefusedAtExport) {
  testing::ScratchDir scratch("int4-export-group");
  const auto lm = tiny_model();
  model::ModuleSource source(*lm);
  Int4ExportOptions options;
  options.scheme.group_size = 32;  // expert down_proj has in_features 16
  testing::expect_error([&] { int4_export_tensors(source, options); },
                        {"group size 32 does not divide the in_features (16)", "down_proj.weight"});
  EXPECT_FALSE(fs::exists(scratch / "out"));
}

// An FP8 block-scaled directory (K2-Instruct's layout) written from chosen bytes and scales.
TEST(Fp8Source, DequantisesBlockScaledLinearsOnRead) {
  testing::ScratchDir scratch("fp8");
  const auto lm = tiny_model();
  model::export_hf_directory(*lm, lm->model->config, scratch / "out", {torch::kFloat32, 1 << 20});
  const std::string target = "model.layers.0.self_attn.kv_b_proj.weight";  // [2*(8+8), 16] = [32, 16]
  torch::manual_seed(8);
  auto bytes = torch::randint(0, 0x7F, {32, 16}, torch::kInt64).to(torch::kUInt8);  // no NaN codes (0x7F, 0xFF)
  bytes.narrow(0, 0, 8).bitwise_or_(0x80);                                           // some negatives
  const auto scale_inv = torch::rand({4, 2}) + 0.5;                                  // 8x8 blocks
  rewrite_tensors(scratch / "out", [&](const std::string& name, const torch::Tensor& t) -> std::optional<torch::Tensor> {
    return name == target ? bytes : t;
  });
  {
    // Add the scale tensor as its own shard listed in the index.
    model::write_safetensors(scratch / "out/scales.safetensors", {{"model.layers.0.self_attn.kv_b_proj.weight_scale_inv", scale_inv}});
    Json index = read_json_file(scratch / "out/model.safetensors.index.json");
    index["weight_map"]["model.layers.0.self_attn.kv_b_proj.weight_scale_inv"] = "scales.safetensors";
    write_text_file_atomic(scratch / "out/model.safetensors.index.json", index.dump(2));
    Json config = read_json_file(scratch / "out/config.json");
    config["quantization_config"] = {{"activation_scheme", "dynamic"}, {"fmt", "e4m3"}, {"quant_method", "fp8"},
                                     {"weight_block_size", {8, 8}}};
    write_text_file_atomic(scratch / "out/config.json", config.dump(2));
  }
  QuantizedHfSource source(scratch / "out");
  EXPECT_EQ(source.format(), WeightFormat::fp8_block);
  const auto expected = dequantize_fp8_block(bytes, scale_inv, 8);
  EXPECT_TRUE(torch::equal(source.load(target), expected));
  const auto names = source.tensor_names();  // scales are part of their linear, not model tensors
  EXPECT_EQ(std::count(names.begin(), names.end(), target + "_scale_inv"), 0);
  EXPECT_EQ(std::count(names.begin(), names.end(), target), 1);
  auto loaded = load_dequantized_model(scratch / "out");
  EXPECT_TRUE(torch::equal(loaded->named_parameters()[target], expected));

  // A NaN code is refused, naming the linear.
  rewrite_tensors(scratch / "out", [&](const std::string& name, const torch::Tensor& t) -> std::optional<torch::Tensor> {
    if (name != target) return t;
    auto with_nan = t.clone();
    with_nan[2][3] = 0x7F;
    return with_nan;
  });
  testing::expect_error([&] { QuantizedHfSource(scratch / "out").load(target); }, {"kv_b_proj", "NaN"});

  Json config = read_json_file(scratch / "out/config.json");
  config["quantization_config"]["weight_block_size"] = {128, 64};
  write_text_file_atomic(scratch / "out/config.json", config.dump(2));
  testing::expect_error([&] { QuantizedHfSource{scratch / "out"}; }, {"weight_block_size", "[128,64]"});
}

}  // namespace
}  // namespace k2f::quant
