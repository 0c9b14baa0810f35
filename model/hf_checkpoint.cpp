#include "model/hf_checkpoint.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "base/error.h"
#include "base/log.h"

namespace k2f::model {
namespace fs = std::filesystem;

namespace {

constexpr const char* kIndexFile = "model.safetensors.index.json";
constexpr const char* kSingleFile = "model.safetensors";

// Router correction biases are kept in fp32 in released checkpoints; everything else follows
// the export dtype.
bool keeps_fp32(const std::string& name) { return name.find("e_score_correction_bias") != std::string::npos; }

std::string shard_name(size_t index, size_t count) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return buffer;
}

}  // namespace

HfDirectory::HfDirectory(const std::string& dir) : dir_(dir) {
  check(fs::is_directory(dir), dir, ": not a directory (expected an HF model directory with config.json)");
  config_ = ModelConfig::from_hf_file((fs::path(dir) / "config.json").string());
  const auto index_path = fs::path(dir) / kIndexFile;
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
  check(fs::exists(single), dir, ": neither ", kIndexFile, " nor ", kSingleFile, " found");
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

void load_hf_weights(torch::nn::Module& model, HfDirectory& directory) {
  size_t loaded = 0;
  for (auto& [name, target] : named_state(model)) {
    load_into(directory.file_for(name), name, target);
    ++loaded;
  }
  log::info("loaded ", loaded, " tensors from ", directory.dir());
}

KimiForCausalLM load_hf_model(const std::string& dir) {
  HfDirectory directory(dir);
  KimiForCausalLM model(directory.config());
  load_hf_weights(*model, directory);
  return model;
}

void export_hf_directory(const torch::nn::Module& model, const ModelConfig& config, const std::string& out_dir,
                         const HfExportOptions& options) {
  check(!fs::exists(out_dir), out_dir, ": already exists; k2forge never overwrites an export (choose a new path)");
  const auto state = named_state(model);
  auto stored_dtype = [&](const std::string& name) { return keeps_fp32(name) ? torch::kFloat32 : options.dtype; };

  // Plan shards by size so names carry the final count.
  std::vector<std::vector<size_t>> shards(1);
  uint64_t shard_bytes = 0, total_bytes = 0;
  for (size_t i = 0; i < state.size(); ++i) {
    const uint64_t bytes = state[i].second.numel() * c10::elementSize(stored_dtype(state[i].first));
    if (!shards.back().empty() && shard_bytes + bytes > options.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(i);
    shard_bytes += bytes;
    total_bytes += bytes;
  }

  const fs::path final_dir(out_dir);
  const fs::path temporary = final_dir.string() + ".tmp-" + std::to_string(::getpid());
  fs::remove_all(temporary);
  fs::create_directories(temporary);
  try {
    Json weight_map = Json::object();
    for (size_t s = 0; s < shards.size(); ++s) {
      const std::string file = shard_name(s, shards.size());
      std::vector<std::pair<std::string, torch::Tensor>> tensors;  // one shard in memory at a time
      for (size_t i : shards[s]) {
        const auto& [name, tensor] = state[i];
        tensors.emplace_back(name, tensor.detach().to(torch::kCPU, stored_dtype(name)).contiguous());
        weight_map[name] = file;
      }
      write_safetensors((temporary / file).string(), tensors);
    }
    Json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    write_text_file_atomic((temporary / kIndexFile).string(), index.dump(2) + "\n");
    Json config_json = config.to_hf_json();
    config_json["torch_dtype"] = options.dtype == torch::kBFloat16 ? "bfloat16" : "float32";
    write_text_file_atomic((temporary / "config.json").string(), config_json.dump(2) + "\n");
    fs::rename(temporary, final_dir);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(temporary, ignored);
    throw;
  }
  log::info("exported ", state.size(), " tensors (", total_bytes, " bytes, ", shards.size(), " shards) to ", out_dir);
}

}  // namespace k2f::model
