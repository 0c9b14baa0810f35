#include "train/model_loading.h"

#include <filesystem>

#include "base/error.h"
#include "base/log.h"
#include "model/hf_checkpoint.h"
#include "train/checkpoint.h"

namespace k2f::train {
namespace fs = std::filesystem;

bool is_training_checkpoint(const std::string& dir) { return fs::exists(fs::path(dir) / "meta.json"); }

model::KimiForCausalLM load_model(const std::string& dir) {
  if (!is_training_checkpoint(dir)) return model::load_hf_model(dir);
  const std::string meta_path = (fs::path(dir) / "meta.json").string();
  const Json meta = read_json_file(meta_path);
  check(meta.contains("model_config"), meta_path, ": no \"model_config\" (not a k2forge checkpoint?)");
  const auto config = model::ModelConfig::from_hf_json(meta.at("model_config"), meta_path + " model_config");
  model::KimiForCausalLM lm(config);
  model::SafetensorsFile file((fs::path(dir) / checkpoint_file_name("model", 0)).string());
  load_named_state(file, model::named_state(*lm));
  log::info("loaded checkpoint ", dir, " (step ", meta.value("step", 0), ")");
  return lm;
}

}  // namespace k2f::train
