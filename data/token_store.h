// Read side of the HDF5 token store (DESIGN.md "Files"):
//   /tokens       int32 [num_tokens]          every document's ids followed by the EOS id
//   /doc_offsets  int64 [num_documents + 1]   start of each document, then the final end
//   /loss_mask    uint8 [num_tokens]          optional; 1 where the token counts as a target
//   attributes on "/": format_version (1), vocab_size, tokenizer_hash ("sha256:...")
// Opening validates all of it (types, lengths, offsets) so a bad file fails before any batch;
// token ranges are read with hyperslabs, which decompress only the chunks they touch.
// libhdf5 1.10 can crash or loop on corrupt files inside its own code, so a store is first opened
// and read (metadata, offsets, its first and last tokens) in a child process (base/isolated_call.h):
// a crash or hang there becomes an error naming the file, and only a store the child read
// without harm is opened in-process.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "data/hdf5_handle.h"

namespace k2f::data {

constexpr int64_t kTokenStoreFormatVersion = 1;
// How long the child may take to read a store's metadata before the file is declared corrupt.
constexpr double kStoreProbeTimeoutSeconds = 300.0;

// Thrown when libhdf5 itself crashed or hung in the probe child: the file is corrupt in a way
// libhdf5 cannot even report.
class Hdf5FaultInProbe : public Error {
 public:
  using Error::Error;
};

// kNone opens in-process only: for debugging libhdf5 under gdb, and for a fuzz harness that
// replays, in-process, inputs the probe showed to be harmless (the child's coverage is invisible).
enum class StoreProbe { kChildProcess, kNone };

class TokenStore {
 public:
  explicit TokenStore(const std::string& path, double probe_timeout_seconds = kStoreProbeTimeoutSeconds,
                      StoreProbe probe = StoreProbe::kChildProcess);

  const std::string& path() const { return path_; }
  int64_t num_tokens() const { return num_tokens_; }
  int64_t num_documents() const { return static_cast<int64_t>(doc_offsets_.size()) - 1; }
  int64_t vocab_size() const { return vocab_size_; }
  const std::string& tokenizer_hash() const { return tokenizer_hash_; }
  bool has_loss_mask() const { return loss_mask_.valid(); }
  const std::vector<int64_t>& doc_offsets() const { return doc_offsets_; }

  // Tokens [start, start + count); throws naming the file on a read failure.
  void read_tokens(int64_t start, int64_t count, int32_t* out) const;
  void read_loss_mask(int64_t start, int64_t count, uint8_t* out) const;
  std::vector<int32_t> read_tokens(int64_t start, int64_t count) const;

 private:
  static void probe_in_child(const std::string& path, double timeout_seconds);
  void open();
  H5Handle open_dataset(const std::string& name, bool required) const;
  void check_integer_dataset(const H5Handle& dataset, const std::string& name, size_t bytes, bool is_signed,
                             int64_t* length) const;
  void check_storage_holds(const H5Handle& dataset, const std::string& name, hsize_t length, size_t bytes) const;
  void read_attributes();
  void read_doc_offsets();
  void read_range(const H5Handle& dataset, hid_t memory_type, const char* name, int64_t start, int64_t count,
                  void* out) const;

  std::string path_;
  H5Handle file_, tokens_, doc_offsets_dataset_, loss_mask_;
  int64_t num_tokens_ = 0;
  int64_t vocab_size_ = 0;
  std::string tokenizer_hash_;
  std::vector<int64_t> doc_offsets_;
};

}  // namespace k2f::data
