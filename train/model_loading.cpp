#include "train/model_loading.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>

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
          {"quantized_merge", o.quantized_merge},
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
    record.options.quantized_merge = it->value("quantized_merge", false);
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

void check_same_architecture(const model::ModelConfig& found, const model::ModelConfig& expected, const std::string& what) {
  const auto fields = [](model::ModelConfig config) {
    config.extra_fields = Json::object();
    Json json = config.to_hf_json();
    for (const char* ignored : {"initializer_range", "aux_loss_alpha", "seq_aux"}) json.erase(ignored);
    return json;
  };
  const Json a = fields(found), b = fields(expected);
  for (const auto& [key, value] : b.items()) {
    const Json other = a.contains(key) ? a.at(key) : Json();
    check(other == value, what, ": its model has ", key, " = ", other.dump(), ", the recipe's [model] has ", value.dump(),
          " (the adapters are trained for the model the recipe describes)");
  }
}

model::ModelConfig stored_model_config(const std::string& dir) {
  if (is_training_checkpoint(dir)) return open_checkpoint_model(dir).config;
  return model::HfDirectory(dir).config();
}

CheckpointModel open_checkpoint_model(const std::string& dir) {
  const std::string meta_path = (fs::path(dir) / "meta.json").string();
  CheckpointModel checkpoint;
  checkpoint.meta = read_json_file(meta_path);
  check(checkpoint.meta.contains("model_config"), meta_path, ": no \"model_config\" (not a k2forge checkpoint?)");
  checkpoint.config = model::ModelConfig::from_hf_json(checkpoint.meta.at("model_config"), meta_path + " model_config");
  checkpoint.tensors = std::make_unique<CheckpointTensors>(dir, "model", checkpoint.meta);  // every rank's part
  return checkpoint;
}

namespace {

bool peft_target_matches(const Json& target_modules, const std::string& path) {
  if (target_modules.is_string()) return std::regex_match(path, std::regex(target_modules.get<std::string>()));
  for (const auto& entry : target_modules) {
    const std::string suffix = entry.get<std::string>();
    if (path == suffix || (path.size() > suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0 &&
                           path[path.size() - suffix.size() - 1] == '.'))
      return true;
  }
  return false;
}

model::KimiForCausalLM load_base_model(const std::string& dir, const LoadOptions& options);

}  // namespace

PeftAdapter apply_peft_adapter(model::KimiForCausalLM& lm, const std::string& dir) {
  const std::string config_path = (fs::path(dir) / "adapter_config.json").string();
  const std::string tensors_path = (fs::path(dir) / "adapter_model.safetensors").string();
  check(fs::exists(config_path), dir, ": no adapter_config.json (expected an HF PEFT adapter directory)");
  const Json config = read_json_file(config_path);
  quant::LoraOptions options;
  Json targets;
  try {
    check(config.value("peft_type", "") == "LORA", "peft_type: expected \"LORA\", got ", config.value("peft_type", Json()).dump());
    check(!config.value("fan_in_fan_out", false), "fan_in_fan_out: expected false (Kimi-K2 linears store [out, in])");
    check(config.value("bias", "none") == "none", "bias: expected \"none\", got ", config.value("bias", Json()).dump());
    options.rank = config.at("r").get<int64_t>();
    options.alpha = config.at("lora_alpha").get<double>();
    options.rslora = config.value("use_rslora", false);
    targets = config.at("target_modules");
    check(targets.is_string() || targets.is_array(), "target_modules: expected a list of names or a regex string");
  } catch (const std::exception& e) {
    fail(config_path, ": ", e.what());
  }
  const model::SafetensorsFile file(tensors_path);
  const std::string prefix = "base_model.model.", suffix = ".lora_A.weight";
  std::vector<std::string> modules;
  for (const auto& name : file.names()) {
    if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    modules.push_back(name.substr(prefix.size(), name.size() - prefix.size() - suffix.size()));
  }
  check(!modules.empty(), tensors_path, ": no \"", prefix, "<module>", suffix, "\" tensors");
  for (const auto& [path, linear] : quant::qat_target_linears(*lm, quant::QatTargets{{"Linear"}, {}})) {
    const bool listed = std::find(modules.begin(), modules.end(), path) != modules.end();
    check(listed == peft_target_matches(targets, path), config_path, ": target_modules ",
          listed ? "does not select " : "selects ", path, ", which ", tensors_path,
          listed ? " adapts" : " has no adapter for");
  }
  options.modules = quant::QatTargets{modules, {}};
  auto adapters = quant::apply_lora(*lm, options);
  check(adapters.adapters.size() == modules.size(), tensors_path, ": ", modules.size() - adapters.adapters.size(),
        " of its adapted modules are not Linear modules of the model (an adapter for another base?)");
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : adapters.named_parameters()) {
    const auto stored = file.entry(name).shape;
    check(stored == tensor.sizes().vec(), tensors_path, ": ", name, " has shape ", Json(stored).dump(), ", the model's ",
          "module needs ", Json(tensor.sizes().vec()).dump(), " (an adapter for another base?)");
    model::load_into(file, name, tensor);
  }
  adapters.train(false);
  log::info("applied the PEFT adapter ", dir, " (r ", options.rank, ", scale ", options.scale(), ") to ", modules.size(),
            " linears");
  return {options, std::move(adapters)};
}

model::KimiForCausalLM load_model(const std::string& dir, const LoadOptions& options) {
  auto lm = load_base_model(dir, options);
  if (!options.adapter.empty()) apply_peft_adapter(lm, options.adapter);
  return lm;
}

namespace {

model::KimiForCausalLM load_base_model(const std::string& dir, const LoadOptions& options) {
  if (!is_training_checkpoint(dir)) {
    if (options.dequantize) return quant::load_dequantized_model(dir);
    model::KimiForCausalLM lm{nullptr};
    const int64_t packed = quant::load_inference_model(dir, lm, options.keep_bf16, options.experts, options.part);
    if (packed > 0) log::info(dir, ": ", packed, " INT4 linears kept packed (W4A16)");
    return lm;
  }
  auto checkpoint = open_checkpoint_model(dir);
  const std::string meta_path = (fs::path(dir) / "meta.json").string();
  if (const auto lora = lora_record_from_meta(checkpoint.meta, meta_path)) {
    check_directory_checksums(lora->base, lora->base_files, meta_path);
    LoadOptions base_options = options;
    base_options.adapter.clear();
    auto lm = load_base_model(lora->base, base_options);
    auto adapters = quant::apply_lora(*lm, lora->options);
    torch::NoGradGuard no_grad;
    for (auto& [name, tensor] : adapters.named_parameters()) checkpoint.tensors->load_into(name, tensor);
    adapters.train(false);
    log::info("loaded the LoRA adapters of ", dir, " (rank ", lora->options.rank, ", ", adapters.adapters.size(),
              " linears) on ", lora->base);
    return lm;
  }
  model::KimiForCausalLM lm(checkpoint.config, options.experts, options.part);
  model::load_weights(*lm, *checkpoint.tensors);
  const auto qat = qat_options_from_meta(checkpoint.meta, (fs::path(dir) / "meta.json").string());
  if (qat) {
    quant::apply_qat(*lm, *qat);
    log::info(dir, ": trained with INT4 QAT; scoring through the same fake quantisation");
  }
  log::info("loaded checkpoint ", dir, " (step ", checkpoint.meta.value("step", 0), ")");
  return lm;
}

}  // namespace

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
