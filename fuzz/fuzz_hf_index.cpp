// Fuzzes the HF checkpoint directory reader: model.safetensors.index.json (weight_map, metadata)
// next to a valid config.json. Every tensor the index names is looked up, which opens the shard
// it points at: missing, escaping or malformed shard names must be errors, never crashes.
#include <cstdint>
#include <exception>

#include "fuzz/fuzz_input.h"
#include "model/hf_checkpoint.h"

namespace {

std::string checkpoint_dir() { return (k2f::fuzz::scratch_dir() / "checkpoint").string(); }

// The published K2 config.json, and a check that a well-formed index is accepted: without it a
// harness whose fixed files were wrong would reject every input at the same line, unnoticed.
void write_config_once() {
  static const bool written = [] {
    k2f::fuzz::write_scratch_file("checkpoint/config.json", k2f::model::kimi_k2_config().to_hf_json().dump(2));
    k2f::fuzz::write_scratch_file("checkpoint/model.safetensors.index.json",
                                  R"({"weight_map": {"lm_head.weight": "model-00001-of-00001.safetensors"}})");
    const k2f::model::HfDirectory directory(checkpoint_dir());
    if (directory.tensor_names().size() != 1) __builtin_trap();
    return true;
  }();
  (void)written;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  write_config_once();
  k2f::fuzz::write_scratch_file("checkpoint/model.safetensors.index.json", data, size);
  try {
    k2f::model::HfDirectory directory(checkpoint_dir());
    for (const auto& name : directory.tensor_names()) (void)directory.shape(name);
  } catch (const std::exception&) {
  }
  return 0;
}
