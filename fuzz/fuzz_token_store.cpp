// Fuzzes the HDF5 token store opener: whatever the bytes (a truncated or corrupted HDF5 file,
// wrong dataset types, offsets that do not add up), opening either fails with a message or yields
// a store whose every token and mask range reads back.
// The store is first read in a child process (data/token_store.h), where libhdf5's own faults on
// corrupt files are contained and become errors. Such a child's sanitizer report is libhdf5's,
// not this target's: the child hook keeps libFuzzer from recording it as the target's crash and,
// when K2F_FUZZ_CONTAINED_DIR is set (scripts/fuzz.sh), writes the report and the input there.
// Coverage counted in the child never reaches libFuzzer, so inputs the child rejected cleanly are
// read once more in-process (safe: the child showed libhdf5 survives them).
#include <sanitizer/common_interface_defs.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <vector>

#include <hdf5.h>

#include "base/isolated_call.h"
#include "data/token_store.h"
#include "fuzz/fuzz_input.h"

namespace {

std::string current_input;

void keep_contained_input() {
  const char* dir = std::getenv("K2F_FUZZ_CONTAINED_DIR");
  if (dir == nullptr) return;
  std::error_code ignored;
  std::filesystem::copy_file(current_input, std::string(dir) + "/input-" + std::to_string(::getpid()) + ".h5",
                             std::filesystem::copy_options::overwrite_existing, ignored);
}

void in_probe_child() {
  __sanitizer_set_death_callback(keep_contained_input);
  static std::string report_prefix;
  if (const char* dir = std::getenv("K2F_FUZZ_CONTAINED_DIR")) {
    report_prefix = std::string(dir) + "/report";
    __sanitizer_set_report_path(report_prefix.c_str());
  }
}

// A corrupt file that makes libhdf5 loop is declared corrupt after this long (libFuzzer's own
// -timeout in scripts/fuzz.sh is 20 s).
constexpr double kProbeTimeoutSeconds = 5.0;

// Opens the store and reads its first tokens and mask, as a training run would.
void open_and_read(const std::string& path, k2f::data::StoreProbe probe) {
  const k2f::data::TokenStore store(path, kProbeTimeoutSeconds, probe);
  const int64_t readable = std::min<int64_t>(store.num_tokens(), 1 << 16);
  std::vector<int32_t> tokens(static_cast<size_t>(readable));
  store.read_tokens(0, readable, tokens.data());
  if (store.has_loss_mask()) {
    std::vector<uint8_t> mask(static_cast<size_t>(readable));
    store.read_loss_mask(0, readable, mask.data());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  k2f::set_isolated_child_hook(in_probe_child);
  const std::string path = k2f::fuzz::write_scratch_file("store.h5", data, size);
  current_input = path;
  try {
    open_and_read(path, k2f::data::StoreProbe::kChildProcess);
  } catch (const k2f::data::Hdf5FaultInProbe&) {
    // Contained: libhdf5 crashed or hung in the child, and the caller got an error.
  } catch (const std::exception&) {
    // A clean error in the child: libhdf5 is harmless on this input, so the same reading runs
    // again in-process, where libFuzzer sees the coverage of the error path it took.
    try {
      open_and_read(path, k2f::data::StoreProbe::kNone);
    } catch (const std::exception&) {
    }
  }
  // libhdf5 keeps freed blocks on its own free lists (by design, for speed); a training run opens
  // a few stores once, but thousands of inputs would pile them up past libFuzzer's RSS limit.
  H5garbage_collect();
  return 0;
}
