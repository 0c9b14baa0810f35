#include "train/model_loading.h"

#include <filesystem>
#include <fstream>

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
