#include "train/model_loading.h"

#include <filesystem>
#include <fstream>

#include "base/crc32c.h"
#include "base/error.h"
#include "base/log.h"
#include "quant/quantized_hf_source.h"
#include "train/checkpoint.h"

namespace k2f::train {
namespace fs = std::filesystem;

bool is_training_checkpoint(const std::string& dir) { return fs::exists(fs::path(dir) / "meta.json"); }

Json quantization_meta(const quant::QatOptions& options) {
  return {{"method", "int4-qat"},
          {"group_size", options.quant.group_size},
          {"grid", quant::grid_name(options.quant.grid)},
          {"targets", options.targets.targets},
          {"ignore", options.targets.ignore}};
}

std::optional<quant::QatOptions> qat_options_from_meta(const Json& meta, const std::string& meta_path) {
  const auto it = meta.find("quantization");
  if (it == meta.end() || it->is_null()) return std::nullopt;
  try {
    check(it->value("method", "") == "int4-qat", "method: expected \"int4-qat\", got ", it->value("method", Json()).dump());
    quant::QatOptions options;
    options.quant.group_size = it->at("group_size").get<int64_t>();
    options.quant.grid = quant::parse_grid(it->at("grid").get<std::string>());
    options.targets.targets = it->at("targets").get<std::vector<std::string>>();
    options.targets.ignore = it->at("ignore").get<std::vector<std::string>>();
    return options;
  } catch (const std::exception& e) {
    fail(meta_path, ": \"quantization\": ", e.what());
  }
}

Json lora_meta(const LoraRecord& record) {
  const auto& o = record.options;
  return {{"method", "lora"},
          {"rank", o.rank},
          {"alpha", o.alpha},
          {"dropout", o.dropout},
          {"rslora", o.rslora},
          {"targets", o.modules.targets},
          {"ignore", o.modules.ignore},
          {"modules", record.modules},
          {"base", record.base},
          {"base_files", record.base_files}};
}

std::optional<LoraRecord> lora_record_from_meta(const Json& meta, const std::string& meta_path) {
  const auto it = meta.find("lora");
  if (it == meta.end() || it->is_null()) return std::nullopt;
  try {
    check(it->value("method", "") == "lora", "method: expected \"lora\", got ", it->value("method", Json()).dump());
    LoraRecord record;
    record.options.rank = it->at("rank").get<int64_t>();
    record.options.alpha = it->at("alpha").get<double>();
    record.options.dropout = it->at("dropout").get<double>();
    record.options.rslora = it->at("rslora").get<bool>();
    record.options.modules.targets = it->at("targets").get<std::vector<std::string>>();
    record.options.modules.ignore = it->at("ignore").get<std::vector<std::string>>();
    record.modules = it->at("modules").get<std::vector<std::string>>();
    record.base = it->at("base").get<std::string>();
    record.base_files = it->at("base_files");
    return record;
  } catch (const std::exception& e) {
    fail(meta_path, ": \"lora\": ", e.what());
  }
}

Json directory_checksums(const std::string& dir) {
  check(fs::is_directory(dir), dir, ": not a directory (expected the base model)");
  Json files = Json::object();
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    files[entry.path().filename().string()] = {{"bytes", static_cast<int64_t>(entry.file_size())},
                                               {"crc32c", crc32c_file(entry.path().string())}};
  }
  return files;
}

void check_directory_checksums(const std::string& dir, const Json& expected, const std::string& what) {
  const Json found = directory_checksums(dir);
  for (const auto& [name, record] : expected.items()) {
    check(found.contains(name), dir, ": ", name, " is missing; ", what, " was made on a base that had it");
    check(found.at(name) == record, dir, "/", name, ": size or CRC-32C differs from what ", what,
          " recorded (", record.dump(), ", found ", found.at(name).dump(), "): the adapters belong to another base");
  }
  for (const auto& [name, record] : found.items())
    check(expected.contains(name), dir, ": ", name, " was not in the base ", what, " was made on");
}

CheckpointModel open_checkpoint_model(const std::string& dir) {
  const std::string meta_path = (fs::path(dir) / "meta.json").string();
  CheckpointModel checkpoint;
  checkpoint.meta = read_json_file(meta_path);
  check(checkpoint.meta.contains("model_config"), meta_path, ": no \"model_config\" (not a k2forge checkpoint?)");
  checkpoint.config = model::ModelConfig::from_hf_json(checkpoint.meta.at("model_config"), meta_path + " model_config");
  checkpoint.tensors =
      std::make_unique<model::SafetensorsFileSource>((fs::path(dir) / checkpoint_file_name("model", 0)).string());
  return checkpoint;
}

model::KimiForCausalLM load_model(const std::string& dir, const LoadOptions& options) {
  if (!is_training_checkpoint(dir)) {
    if (options.dequantize) return quant::load_dequantized_model(dir);
    model::KimiForCausalLM lm{nullptr};
    const int64_t packed = quant::load_inference_model(dir, lm);
    if (packed > 0) log::info(dir, ": ", packed, " INT4 linears kept packed (W4A16)");
    return lm;
  }
  auto checkpoint = open_checkpoint_model(dir);
  const std::string meta_path = (fs::path(dir) / "meta.json").string();
  if (const auto lora = lora_record_from_meta(checkpoint.meta, meta_path)) {
    check_directory_checksums(lora->base, lora->base_files, meta_path);
    auto lm = load_model(lora->base, options);
    auto adapters = quant::apply_lora(*lm, lora->options);
    torch::NoGradGuard no_grad;
    for (auto& [name, tensor] : adapters.named_parameters()) checkpoint.tensors->load_into(name, tensor);
    adapters.train(false);
    log::info("loaded the LoRA adapters of ", dir, " (rank ", lora->options.rank, ", ", adapters.adapters.size(),
              " linears) on ", lora->base);
    return lm;
  }
  model::KimiForCausalLM lm(checkpoint.config);
  model::load_weights(*lm, *checkpoint.tensors);
  const auto qat = qat_options_from_meta(checkpoint.meta, (fs::path(dir) / "meta.json").string());
  if (qat) {
    quant::apply_qat(*lm, *qat);
    log::info(dir, ": trained with INT4 QAT; scoring through the same fake quantisation");
  }
  log::info("loaded checkpoint ", dir, " (step ", checkpoint.meta.value("step", 0), ")");
  return lm;
}

std::string resolve_model_dir(const std::string& dir) {
  const fs::path latest = fs::path(dir) / "latest";
  if (!fs::exists(fs::path(dir) / "meta.json") && !fs::exists(fs::path(dir) / "config.json") && fs::exists(latest)) {
    std::ifstream in(latest);
    std::string name;
    in >> name;
    check(!name.empty(), latest.string(), ": empty (expected the name of the run's newest checkpoint)");
    return (fs::path(dir) / name).string();
  }
  return dir;
}

}  // namespace k2f::train
