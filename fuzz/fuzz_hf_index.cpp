// Fuzzes the HF checkpoint directory reader: model.safetensors.index.json (weight_map, metadata)
// next to a valid config.json. Every tensor the index names is looked up, which opens the shard
// it points at: missing, escaping or malformed shard names must be errors, never crashes.
#include <cstdint>
#include <exception>

#include "fuzz/fuzz_input.h"
#include "model/hf_checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string config_path =
      k2f::fuzz::write_scratch_file("checkpoint/config.json", k2f::model::ModelConfig().to_hf_json().dump(2));
  const std::string index_path = k2f::fuzz::write_scratch_file("checkpoint/model.safetensors.index.json", data, size);
  try {
    k2f::model::HfDirectory directory((k2f::fuzz::scratch_dir() / "checkpoint").string());
    for (const auto& name : directory.tensor_names()) (void)directory.shape(name);
  } catch (const std::exception&) {
  }
  return 0;
}
