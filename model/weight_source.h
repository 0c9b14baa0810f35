// Where a model's tensors come from, looked up by HF name: an HF directory, one safetensors file
// (a training checkpoint shard), a model in memory, or (in quant/) a quantised directory that
// dequantises on read. Loading, export and resharding all go through this one interface, tensor
// by tensor, so no step needs a second copy of the model in memory.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "model/safetensors.h"

namespace k2f::model {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // The directory or file, for messages.
  virtual std::string description() const = 0;
  // Logical tensor names (for a quantised source: "<linear>.weight", not its packed parts).
  virtual std::vector<std::string> tensor_names() const = 0;
  virtual bool contains(const std::string& name) const = 0;
  virtual std::vector<int64_t> shape(const std::string& name) = 0;
  // The dtype load() returns.
  virtual torch::ScalarType dtype(const std::string& name) = 0;
  // The tensor as the model sees it: stored floating dtype, or fp32 where it was dequantised.
  virtual torch::Tensor load(const std::string& name) = 0;
  // Copies into `target` after checking presence, shape and dtype kind; errors name the source,
  // the tensor, what was expected and what was found.
  virtual void load_into(const std::string& name, torch::Tensor& target);
};

// One safetensors file, its tensors as stored.
class SafetensorsFileSource : public WeightSource {
 public:
  explicit SafetensorsFileSource(const std::string& path) : file_(path) {}
  std::string description() const override { return file_.path(); }
  std::vector<std::string> tensor_names() const override { return file_.names(); }
  bool contains(const std::string& name) const override { return file_.contains(name); }
  std::vector<int64_t> shape(const std::string& name) override { return file_.entry(name).shape; }
  torch::ScalarType dtype(const std::string& name) override { return torch_dtype(file_.entry(name).dtype); }
  torch::Tensor load(const std::string& name) override { return file_.load(name); }
  void load_into(const std::string& name, torch::Tensor& target) override { model::load_into(file_, name, target); }

 private:
  SafetensorsFile file_;
};

// The parameters and buffers of a module in memory (named_state), detached.
class ModuleSource : public WeightSource {
 public:
  explicit ModuleSource(const torch::nn::Module& module);
  std::string description() const override { return "the model in memory"; }
  std::vector<std::string> tensor_names() const override;
  bool contains(const std::string& name) const override;
  std::vector<int64_t> shape(const std::string& name) override;
  torch::ScalarType dtype(const std::string& name) override { return find(name).scalar_type(); }
  torch::Tensor load(const std::string& name) override;

 private:
  const torch::Tensor& find(const std::string& name) const;
  std::vector<std::pair<std::string, torch::Tensor>> state_;
};

// Fills every parameter and buffer of `model` from `source`, except the names in `skip` (tensors a
// kernel holds in another form).
void load_weights(torch::nn::Module& model, WeightSource& source, const std::set<std::string>& skip = {});

// Names sorted with digit runs compared as numbers ("layers.2" before "layers.10"), so exports
// list tensors layer by layer.
std::vector<std::string> natural_order(std::vector<std::string> names);

}  // namespace k2f::model
