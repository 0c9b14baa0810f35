#include "model/hf_export.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "base/error.h"
#include "base/log.h"
#include "model/safetensors.h"

namespace k2f::model {
namespace fs = std::filesystem;

namespace {

std::string shard_name(size_t index, size_t count) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return buffer;
}

// Groups tensor indices into shards of at most max_shard_bytes (a larger tensor gets its own).
std::vector<std::vector<size_t>> plan_shards(const std::vector<ExportTensor>& tensors, uint64_t max_shard_bytes) {
  std::vector<std::vector<size_t>> shards(1);
  uint64_t shard_bytes = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const uint64_t bytes = tensors[i].bytes();
    if (!shards.back().empty() && shard_bytes + bytes > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(i);
    shard_bytes += bytes;
  }
  return shards;
}

torch::Tensor produce_checked(const ExportTensor& spec) {
  auto tensor = spec.produce();
  check(tensor.scalar_type() == spec.dtype && tensor.sizes().vec() == spec.shape, "export of \"", spec.name,
        "\": produced ", tensor.scalar_type(), " ", tensor.sizes(), ", planned ", spec.dtype, " ",
        torch::IntArrayRef(spec.shape));
  return tensor.cpu().contiguous();
}

}  // namespace

uint64_t ExportTensor::bytes() const {
  uint64_t numel = 1;
  for (int64_t d : shape) numel *= static_cast<uint64_t>(d);
  return numel * c10::elementSize(dtype);
}

void write_directory_atomically(const std::string& out_dir, const std::function<void(const fs::path&)>& fill) {
  check(!fs::exists(out_dir), out_dir, ": already exists; k2forge never overwrites an export (choose a new path)");
  const fs::path final_dir(out_dir);
  const fs::path temporary = final_dir.string() + ".tmp-" + std::to_string(::getpid());
  fs::remove_all(temporary);
  fs::create_directories(temporary);
  try {
    fill(temporary);
    fs::rename(temporary, final_dir);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(temporary, ignored);
    throw;
  }
}

void write_hf_directory(const std::vector<ExportTensor>& tensors, const Json& config_json, const std::string& out_dir,
                        uint64_t max_shard_bytes) {
  check(!fs::exists(out_dir), out_dir, ": already exists; k2forge never overwrites an export (choose a new path)");
  check(!tensors.empty(), out_dir, ": nothing to export");
  const auto shards = plan_shards(tensors, max_shard_bytes);
  uint64_t total_bytes = 0;
  for (const auto& t : tensors) total_bytes += t.bytes();

  write_directory_atomically(out_dir, [&](const fs::path& temporary) {
    Json weight_map = Json::object();
    for (size_t s = 0; s < shards.size(); ++s) {
      const std::string file = shard_name(s, shards.size());
      std::vector<std::pair<std::string, torch::Tensor>> shard;  // one shard in memory at a time
      for (size_t i : shards[s]) {
        shard.emplace_back(tensors[i].name, produce_checked(tensors[i]));
        weight_map[tensors[i].name] = file;
      }
      write_safetensors((temporary / file).string(), shard);
    }
    Json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    write_text_file_atomic((temporary / kSafetensorsIndexFile).string(), index.dump(2) + "\n");
    write_text_file_atomic((temporary / "config.json").string(), config_json.dump(2) + "\n");
  });
  log::info("exported ", tensors.size(), " tensors (", total_bytes, " bytes, ", shards.size(), " shards) to ",
            out_dir);
}

torch::ScalarType export_dtype_for(const std::string& name, torch::ScalarType stored, torch::ScalarType dtype) {
  if (!c10::isFloatingType(stored)) return stored;
  if (name.find("e_score_correction_bias") != std::string::npos) return torch::kFloat32;
  return dtype;
}

std::vector<ExportTensor> plain_export_tensors(WeightSource& source, torch::ScalarType dtype) {
  std::vector<ExportTensor> tensors;
  for (const auto& name : natural_order(source.tensor_names())) {
    const auto out_dtype = export_dtype_for(name, source.dtype(name), dtype);
    tensors.push_back({name, out_dtype, source.shape(name),
                       [&source, name, out_dtype] { return source.load(name).to(out_dtype); }});
  }
  return tensors;
}

Json plain_export_config(const ModelConfig& config, torch::ScalarType dtype) {
  Json config_json = config.to_hf_json();
  config_json.erase("quantization_config");
  config_json["torch_dtype"] = dtype == torch::kBFloat16 ? "bfloat16" : "float32";
  return config_json;
}

void export_hf_directory(const torch::nn::Module& model, const ModelConfig& config, const std::string& out_dir,
                         const HfExportOptions& options) {
  ModuleSource source(model);
  write_hf_directory(plain_export_tensors(source, options.dtype), plain_export_config(config, options.dtype), out_dir,
                     options.max_shard_bytes);
}

}  // namespace k2f::model
