// Writing HF directories: config.json, `model-0000N-of-0000M.safetensors` shards under a size
// limit, and `model.safetensors.index.json`. The writer takes a list of tensors to produce (name,
// dtype, shape, and a function that makes the bytes), plans the shards from the shapes alone, then
// produces one shard at a time: peak memory is about one shard, whatever the model's size. Every
// file goes into a temporary directory renamed into place when complete, so a failed export
// leaves nothing behind.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "base/json_io.h"
#include "model/config.h"
#include "model/weight_source.h"

namespace k2f::model {

struct ExportTensor {
  std::string name;
  torch::ScalarType dtype;
  std::vector<int64_t> shape;
  std::function<torch::Tensor()> produce;  // must return exactly `dtype` and `shape`
  uint64_t bytes() const;
};

// Runs `fill` on a temporary directory beside `out_dir` (which must not exist) and renames it to
// `out_dir` when `fill` returns; on an error the temporary directory is removed.
void write_directory_atomically(const std::string& out_dir, const std::function<void(const std::filesystem::path&)>& fill);

// Writes the tensors (in the given order) and `config_json` to `out_dir`, which must not exist.
void write_hf_directory(const std::vector<ExportTensor>& tensors, const Json& config_json, const std::string& out_dir,
                        uint64_t max_shard_bytes);

struct HfExportOptions {
  torch::ScalarType dtype = torch::kBFloat16;  // of floating tensors; router biases stay fp32
  uint64_t max_shard_bytes = 4ull << 30;
};

// Router correction biases stay fp32 in released checkpoints; other floating tensors take `dtype`,
// integer tensors keep theirs.
torch::ScalarType export_dtype_for(const std::string& name, torch::ScalarType stored, torch::ScalarType dtype);

// The source's tensors in natural order, floating ones converted as export_dtype_for says.
std::vector<ExportTensor> plain_export_tensors(WeightSource& source, torch::ScalarType dtype);

// config.json for an unquantised export: the model config, torch_dtype, no quantization_config.
Json plain_export_config(const ModelConfig& config, torch::ScalarType dtype);

// A model in memory as an HF directory (used by `init` and tests).
void export_hf_directory(const torch::nn::Module& model, const ModelConfig& config, const std::string& out_dir,
                         const HfExportOptions& options = {});

}  // namespace k2f::model
