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
#include "model/weight_source.h"

namespace k2f::model {

// The tensors as stored (a quantised directory lists its packed parts; quant/ reads those).
class HfDirectory : public WeightSource {
 public:
  explicit HfDirectory(const std::string& dir);  // reads config.json and the index

  const std::string& dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  // config.json as read (including fields ModelConfig does not model, e.g. quantization_config).
  const Json& config_json() const { return config_json_; }
  // Where a tensor lives; throws naming the index and the tensor when it is absent.
  const SafetensorsFile& file_for(const std::string& name);
  const TensorEntry& entry(const std::string& name) { return file_for(name).entry(name); }

  std::string description() const override { return dir_; }
  std::vector<std::string> tensor_names() const override;
  bool contains(const std::string& name) const override { return weight_map_.count(name) > 0; }
  std::vector<int64_t> shape(const std::string& name) override { return entry(name).shape; }
  torch::ScalarType dtype(const std::string& name) override { return torch_dtype(entry(name).dtype); }
  torch::Tensor load(const std::string& name) override { return file_for(name).load(name); }
  void load_into(const std::string& name, torch::Tensor& target) override { model::load_into(file_for(name), name, target); }

 private:
  std::string dir_;
  std::string index_source_;  // the index file, or the single safetensors file
  ModelConfig config_;
  Json config_json_;
  std::map<std::string, std::string> weight_map_;  // tensor -> file name
  std::map<std::string, std::unique_ptr<SafetensorsFile>> open_files_;
};

// Copies every parameter and buffer of `model` from the directory, converting floating dtypes
// to the model's; "expected X, got Y" errors name the file and tensor.
void load_hf_weights(torch::nn::Module& model, HfDirectory& directory);

// A model built from the directory's config with its weights loaded (unquantised directories;
// quantised ones go through quant/quantized_hf_source.h).
KimiForCausalLM load_hf_model(const std::string& dir);

}  // namespace k2f::model
