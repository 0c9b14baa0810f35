#include "model/hf_checkpoint.h"

#include <filesystem>

#include "base/error.h"
#include "base/log.h"
#include "model/safetensors.h"

namespace k2f::model {
namespace fs = std::filesystem;

namespace {

constexpr const char* kSingleFile = "model.safetensors";

}  // namespace

HfDirectory::HfDirectory(const std::string& dir) : dir_(dir) {
  check(fs::is_directory(dir), dir, ": not a directory (expected an HF model directory with config.json)");
  const std::string config_path = (fs::path(dir) / "config.json").string();
  config_json_ = read_json_file(config_path);
  config_ = ModelConfig::from_hf_json(config_json_, config_path);
  const auto index_path = fs::path(dir) / kSafetensorsIndexFile;
  if (fs::exists(index_path)) {
    index_source_ = index_path.string();
    const Json index = read_json_file(index_source_);
    check(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(), index_source_,
          ": expected an object with a \"weight_map\" object");
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      check(it.value().is_string(), index_source_, ": weight_map entry \"", it.key(), "\" must be a file name");
      const std::string file = it.value().get<std::string>();
      check(file.find('/') == std::string::npos && file != ".." && !file.empty(), index_source_,
            ": weight_map entry \"", it.key(), "\" names \"", file, "\", expected a file inside the directory");
      weight_map_[it.key()] = file;
    }
    return;
  }
  const auto single = fs::path(dir) / kSingleFile;
  check(fs::exists(single), dir, ": neither ", kSafetensorsIndexFile, " nor ", kSingleFile, " found");
  index_source_ = single.string();
  auto file = std::make_unique<SafetensorsFile>(index_source_);
  for (const auto& name : file->names()) weight_map_[name] = kSingleFile;
  open_files_[kSingleFile] = std::move(file);
}

std::vector<std::string> HfDirectory::tensor_names() const {
  std::vector<std::string> names;
  for (const auto& [name, file] : weight_map_) names.push_back(name);
  return names;
}

const SafetensorsFile& HfDirectory::file_for(const std::string& name) {
  auto it = weight_map_.find(name);
  check(it != weight_map_.end(), index_source_, ": no entry for tensor \"", name, "\" (the model needs it)");
  auto& file = open_files_[it->second];
  if (!file) file = std::make_unique<SafetensorsFile>((fs::path(dir_) / it->second).string());
  check(file->contains(name), file->path(), ": tensor \"", name, "\" is listed in ", index_source_,
        " but missing from the file");
  return *file;
}

void load_hf_weights(torch::nn::Module& model, HfDirectory& directory) { load_weights(model, directory); }

KimiForCausalLM load_hf_model(const std::string& dir) {
  HfDirectory directory(dir);
  KimiForCausalLM model(directory.config());
  load_hf_weights(*model, directory);
  return model;
}

}  // namespace k2f::model
