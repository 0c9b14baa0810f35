// Fuzzes the HDF5 token store opener: whatever the bytes (a truncated or corrupted HDF5 file,
// wrong dataset types, offsets that do not add up), opening either fails with a message or yields
// a store whose every token and mask range reads back.
#include <algorithm>
#include <cstdint>
#include <exception>
#include <vector>

#include <hdf5.h>

#include "data/token_store.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = k2f::fuzz::write_scratch_file("store.h5", data, size);
  try {
    const k2f::data::TokenStore store(path);
    const int64_t readable = std::min<int64_t>(store.num_tokens(), 1 << 16);
    std::vector<int32_t> tokens(static_cast<size_t>(readable));
    store.read_tokens(0, readable, tokens.data());
    if (store.has_loss_mask()) {
      std::vector<uint8_t> mask(static_cast<size_t>(readable));
      store.read_loss_mask(0, readable, mask.data());
    }
  } catch (const std::exception&) {
  }
  // libhdf5 keeps freed blocks on its own free lists (by design, for speed); a training run opens
  // a few stores once, but thousands of inputs would pile them up past libFuzzer's RSS limit.
  H5garbage_collect();
  return 0;
}
