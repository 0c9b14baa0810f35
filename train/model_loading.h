// Opening a model for inference or export from any directory a user has: an HF directory (bf16,
// FP8 block-scaled or INT4 pack-quantized config.json + safetensors) or a k2forge training
// checkpoint (meta.json with the model config and the index of its model-rank*.safetensors). A checkpoint trained
// with QAT records its quantisation in meta.json and is opened with the same fake quantisation,
// so scoring it scores the INT4 model it will export to.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "base/json_io.h"
#include "model/kimi_model.h"
#include "model/weight_source.h"
#include "quant/lora.h"
#include "quant/qat.h"

namespace k2f::train {

bool is_training_checkpoint(const std::string& dir);

// A run directory (holding `latest`, no model of its own) stands for its newest checkpoint; any
// other directory for itself.
std::string resolve_model_dir(const std::string& dir);

struct LoadOptions {
  // INT4 directories: false keeps the routed experts packed (W4A16 kernel); true dequantises them
  // into ordinary fp32 weights.
  bool dequantize = false;
  // An HF PEFT LoRA adapter directory applied on top ("": none); see apply_peft_adapter.
  std::string adapter;
  // HF directories: Linear and embedding weights stored in bf16 stay bf16 in memory (a frozen base
  // under bf16 compute: lossless, half the bytes, no cast per forward).
  bool keep_bf16 = false;
  // The part of the model to build: a rank's routed experts and pipeline stage (default: all).
  model::ExpertSlice experts;
  model::ModelPart part;
};

// The model with its weights, from an HF directory or a training checkpoint directory.
model::KimiForCausalLM load_model(const std::string& dir, const LoadOptions& options = {});

// Applies an HF PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors) to
// `model`: the modules that hold lora_A / lora_B tensors, which must be exactly those the config's
// target_modules select (PEFT's rule: list entries match a module path or its dotted suffix, a
// string is a regex matched against the whole path), with s = lora_alpha / r (or / sqrt(r) with
// use_rslora). Errors name the directory and what does not fit (a shape, a module, a field).
// Returns the adapters (their A and B train on if set to require gradients) and their settings,
// with `modules.targets` the adapted module paths.
struct PeftAdapter {
  quant::LoraOptions options;
  quant::LoraAdapters adapters;
};
PeftAdapter apply_peft_adapter(model::KimiForCausalLM& model, const std::string& dir);

// What meta.json records about a QAT run, and reading it back (nullopt: trained without QAT).
Json quantization_meta(const quant::QatOptions& options);
std::optional<quant::QatOptions> qat_options_from_meta(const Json& meta, const std::string& meta_path);

// What meta.json records about a LoRA run (nullopt: not one): the adapters' settings and modules,
// the base they adapt (its directory, absolute) and the size and CRC-32C of each of the base's
// files, so that adapters are never applied to another base.
struct LoraRecord {
  quant::LoraOptions options;
  std::vector<std::string> modules;
  std::string base;
  Json base_files;
};
Json lora_meta(const LoraRecord& record);
std::optional<LoraRecord> lora_record_from_meta(const Json& meta, const std::string& meta_path);

// {"<file name>": {"bytes": N, "crc32c": C}} over the regular files directly in `dir`.
Json directory_checksums(const std::string& dir);
// Errors unless `dir`'s files are those `expected` records, naming the first that differs and `what`
// recorded them.
void check_directory_checksums(const std::string& dir, const Json& expected, const std::string& what);

// The model config a directory stores: config.json of an HF directory, meta.json's model_config
// of a training checkpoint.
model::ModelConfig stored_model_config(const std::string& dir);

// Errors unless `found` (a base's config) describes the same network as `expected` (the recipe's
// [model]), naming `what`, the first field that differs and both values. Unknown config.json
// fields and the initialisation-only fields are not compared.
void check_same_architecture(const model::ModelConfig& found, const model::ModelConfig& expected, const std::string& what);

// A checkpoint directory's meta.json, its model config, and its tensors as a WeightSource.
struct CheckpointModel {
  Json meta;
  model::ModelConfig config;
  std::unique_ptr<model::WeightSource> tensors;
};
CheckpointModel open_checkpoint_model(const std::string& dir);

}  // namespace k2f::train
