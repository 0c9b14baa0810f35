// Write side of the HDF5 token store (layout in token_store.h). Datasets are extendible and
// chunked (16384 tokens = 64 KiB per chunk, shuffle + deflate + Fletcher-32 checksum), and documents are buffered and
// appended in blocks, so memory stays bounded by the block size whatever the store's size.
// The writer writes `path` directly; callers write a temporary name and rename it (store_builder).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/hdf5_handle.h"

namespace k2f::data {

struct TokenStoreWriterOptions {
  int64_t vocab_size = 0;
  std::string tokenizer_hash;
  bool with_loss_mask = false;
  int64_t chunk_tokens = 16384;
  int64_t flush_tokens = 1 << 20;  // buffered tokens before a block is appended
  int compression_level = 3;       // deflate 0..9
  void validate() const;
};

class TokenStoreWriter {
 public:
  TokenStoreWriter(const std::string& path, TokenStoreWriterOptions options);
  ~TokenStoreWriter();

  // Appends one document; `loss_mask` (same length) is required iff with_loss_mask.
  void append_document(const std::vector<int32_t>& tokens, const std::vector<uint8_t>* loss_mask = nullptr);
  // Flushes and closes the file; the writer is unusable afterwards.
  void finish();

  int64_t num_tokens() const { return num_tokens_; }
  int64_t num_documents() const { return num_documents_; }

 private:
  H5Handle create_dataset(const char* name, hid_t type, int64_t chunk);
  void append(const H5Handle& dataset, hid_t type, const void* data, int64_t count, int64_t offset);
  void flush();
  void write_attributes();

  std::string path_;
  TokenStoreWriterOptions options_;
  H5Handle file_, tokens_, doc_offsets_, loss_mask_;
  std::vector<int32_t> token_buffer_;
  std::vector<uint8_t> mask_buffer_;
  std::vector<int64_t> offset_buffer_;
  int64_t num_tokens_ = 0, flushed_tokens_ = 0, flushed_offsets_ = 0, num_documents_ = 0;
  bool finished_ = false;
};

}  // namespace k2f::data
