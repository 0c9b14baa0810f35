// Fuzzes the safetensors reader: the 8-byte header length, the JSON header (dtypes, shapes,
// data_offsets, __metadata__) and the offsets' agreement with the file size. Every tensor the
// header accepts is loaded, so an accepted header must describe bytes that really exist.
#include <cstdint>
#include <exception>

#include "fuzz/fuzz_input.h"
#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = k2f::fuzz::write_scratch_file("input.safetensors", data, size);
  try {
    const k2f::model::SafetensorsFile file(path);
    for (const auto& name : file.names()) {
      const auto tensor = file.load(name);
      if (tensor.numel() != file.entry(name).numel()) __builtin_trap();
    }
  } catch (const std::exception&) {
    // Rejected with a message: the expected outcome for most inputs.
  }
  return 0;
}
