// HF checkpoint directories: config.json plus either model.safetensors or sharded
// model-0000N-of-0000M.safetensors with model.safetensors.index.json. Import looks each of the
// model's tensors up by HF name (so a model holding a subset, such as one pipeline stage or one
// expert-parallel rank, reads only that subset) and checks shape and dtype. Export writes shards
// under a size limit into a temporary directory that is renamed into place when complete.
#pragma once

#include <map>
#include <memory>
#include <string>

#include <torch/nn/module.h>

#include "model/config.h"
#include "model/kimi_model.h"
#include "model/safetensors.h"

namespace k2f::model {

class HfDirectory {
 public:
  explicit HfDirectory(const std::string& dir);  // reads config.json and the index

  const std::string& dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  bool contains(const std::string& name) const { return weight_map_.count(name) > 0; }
  // Where a tensor lives; throws naming the index and the tensor when it is absent.
  const SafetensorsFile& file_for(const std::string& name);
  const TensorEntry& entry(const std::string& name) { return file_for(name).entry(name); }
  torch::Tensor load(const std::string& name) { return file_for(name).load(name); }
  std::vector<std::string> tensor_names() const;

 private:
  std::string dir_;
  std::string index_source_;  // the index file, or the single safetensors file
  ModelConfig config_;
  std::map<std::string, std::string> weight_map_;  // tensor -> file name
  std::map<std::string, std::unique_ptr<SafetensorsFile>> open_files_;
};

// Copies every parameter and buffer of `model` from the directory, converting floating dtypes
// to the model's; "expected X, got Y" errors name the file and tensor.
void load_hf_weights(torch::nn::Module& model, HfDirectory& directory);

// A model built from the directory's config with its weights loaded.
KimiForCausalLM load_hf_model(const std::string& dir);

struct HfExportOptions {
  torch::ScalarType dtype = torch::kBFloat16;  // of floating tensors; router biases stay fp32
  uint64_t max_shard_bytes = 4ull << 30;
};

// Writes config.json, shards and index to `out_dir`, which must not exist yet.
void export_hf_directory(const torch::nn::Module& model, const ModelConfig& config, const std::string& out_dir,
                         const HfExportOptions& options = {});

}  // namespace k2f::model
