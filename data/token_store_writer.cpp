#include "data/token_store_writer.h"

#include "base/error.h"
#include "data/token_store.h"

namespace k2f::data {

void TokenStoreWriterOptions::validate() const {
  check(vocab_size > 0 && vocab_size <= (1LL << 31), "token store: vocab_size (", vocab_size,
        ") must be in [1, 2^31]");
  check(chunk_tokens > 0, "token store: chunk_tokens (", chunk_tokens, ") must be positive");
  check(flush_tokens > 0, "token store: flush_tokens (", flush_tokens, ") must be positive");
  check(compression_level >= 0 && compression_level <= 9, "token store: compression_level (", compression_level,
        ") must be in [0, 9]");
}

TokenStoreWriter::TokenStoreWriter(const std::string& path, TokenStoreWriterOptions options)
    : path_(path), options_(std::move(options)) {
  options_.validate();
  const Hdf5Lock lock;
  quiet_hdf5_errors();
  file_ = h5_check(H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT), path,
                   "cannot create the HDF5 file (exists already, or the directory is missing or read-only)");
  tokens_ = create_dataset("tokens", H5T_STD_I32LE, options_.chunk_tokens);
  doc_offsets_ = create_dataset("doc_offsets", H5T_STD_I64LE, 8192);
  if (options_.with_loss_mask) loss_mask_ = create_dataset("loss_mask", H5T_STD_U8LE, options_.chunk_tokens);
  write_attributes();
  offset_buffer_.push_back(0);
}

TokenStoreWriter::~TokenStoreWriter() = default;

H5Handle TokenStoreWriter::create_dataset(const char* name, hid_t type, int64_t chunk) {
  const hsize_t dims[1] = {0}, max_dims[1] = {H5S_UNLIMITED}, chunk_dims[1] = {static_cast<hsize_t>(chunk)};
  const H5Handle space = h5_check(H5Screate_simple(1, dims, max_dims), path_, "cannot create a dataspace");
  const H5Handle properties = h5_check(H5Pcreate(H5P_DATASET_CREATE), path_, "cannot create properties");
  h5_check_status(H5Pset_chunk(properties.get(), 1, chunk_dims), path_, "cannot set the chunk size");
  h5_check_status(H5Pset_fletcher32(properties.get()), path_, "cannot enable checksums");  // corrupt chunks fail loudly
  if (options_.compression_level > 0) {
    h5_check_status(H5Pset_shuffle(properties.get()), path_, "cannot enable the shuffle filter");
    h5_check_status(H5Pset_deflate(properties.get(), options_.compression_level), path_, "cannot enable deflate");
  }
  return h5_check(H5Dcreate2(file_.get(), name, type, space.get(), H5P_DEFAULT, properties.get(), H5P_DEFAULT), path_,
                  std::string("cannot create dataset /") + name);
}

void TokenStoreWriter::write_attributes() {
  const H5Handle scalar = h5_check(H5Screate(H5S_SCALAR), path_, "cannot create a dataspace");
  auto write_int = [&](const char* name, int64_t value) {
    const H5Handle attribute = h5_check(
        H5Acreate2(file_.get(), name, H5T_STD_I64LE, scalar.get(), H5P_DEFAULT, H5P_DEFAULT), path_,
        std::string("cannot create attribute ") + name);
    h5_check_status(H5Awrite(attribute.get(), H5T_NATIVE_INT64, &value), path_, std::string("cannot write ") + name);
  };
  write_int("format_version", kTokenStoreFormatVersion);
  write_int("vocab_size", options_.vocab_size);
  const std::string& hash = options_.tokenizer_hash;
  const H5Handle string_type = h5_check(H5Tcopy(H5T_C_S1), path_, "cannot create a string type");
  h5_check_status(H5Tset_size(string_type.get(), std::max<size_t>(hash.size(), 1)), path_, "cannot size a string");
  const H5Handle attribute = h5_check(
      H5Acreate2(file_.get(), "tokenizer_hash", string_type.get(), scalar.get(), H5P_DEFAULT, H5P_DEFAULT), path_,
      "cannot create attribute tokenizer_hash");
  std::string padded = hash.empty() ? std::string(1, '\0') : hash;
  h5_check_status(H5Awrite(attribute.get(), string_type.get(), padded.data()), path_, "cannot write tokenizer_hash");
}

void TokenStoreWriter::append_document(const std::vector<int32_t>& tokens, const std::vector<uint8_t>* loss_mask) {
  check(!finished_, path_, ": append after finish");
  check(!tokens.empty(), path_, ": document ", num_documents_, " is empty (every document ends with EOS)");
  check((loss_mask != nullptr) == options_.with_loss_mask, path_, ": loss_mask given for a store ",
        options_.with_loss_mask ? "that needs one" : "without one");
  for (size_t i = 0; i < tokens.size(); ++i)
    check(tokens[i] >= 0 && tokens[i] < options_.vocab_size, path_, ": document ", num_documents_, ", token ", i,
          ": id ", tokens[i], " is outside the vocabulary [0, ", options_.vocab_size, ")");
  token_buffer_.insert(token_buffer_.end(), tokens.begin(), tokens.end());
  if (loss_mask) {
    check(loss_mask->size() == tokens.size(), path_, ": loss_mask length ", loss_mask->size(), ", expected ",
          tokens.size());
    mask_buffer_.insert(mask_buffer_.end(), loss_mask->begin(), loss_mask->end());
  }
  num_tokens_ += static_cast<int64_t>(tokens.size());
  ++num_documents_;
  offset_buffer_.push_back(num_tokens_);
  if (static_cast<int64_t>(token_buffer_.size()) >= options_.flush_tokens) flush();
}

void TokenStoreWriter::append(const H5Handle& dataset, hid_t type, const void* data, int64_t count, int64_t offset) {
  if (count == 0) return;
  const hsize_t new_size[1] = {static_cast<hsize_t>(offset + count)};
  h5_check_status(H5Dset_extent(dataset.get(), new_size), path_, "cannot extend a dataset (disk full?)");
  const H5Handle file_space = h5_check(H5Dget_space(dataset.get()), path_, "cannot get a dataspace");
  const hsize_t start[1] = {static_cast<hsize_t>(offset)}, length[1] = {static_cast<hsize_t>(count)};
  h5_check_status(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, length, nullptr), path_,
                  "cannot select a hyperslab");
  const H5Handle memory_space = h5_check(H5Screate_simple(1, length, nullptr), path_, "cannot create a dataspace");
  h5_check_status(H5Dwrite(dataset.get(), type, memory_space.get(), file_space.get(), H5P_DEFAULT, data), path_,
                  "write failed (disk full?)");
}

void TokenStoreWriter::flush() {
  const Hdf5Lock lock;
  const auto count = static_cast<int64_t>(token_buffer_.size());
  append(tokens_, H5T_NATIVE_INT32, token_buffer_.data(), count, flushed_tokens_);
  if (options_.with_loss_mask) append(loss_mask_, H5T_NATIVE_UINT8, mask_buffer_.data(), count, flushed_tokens_);
  append(doc_offsets_, H5T_NATIVE_INT64, offset_buffer_.data(), static_cast<int64_t>(offset_buffer_.size()),
         flushed_offsets_);
  flushed_tokens_ += count;
  flushed_offsets_ += static_cast<int64_t>(offset_buffer_.size());
  token_buffer_.clear();
  mask_buffer_.clear();
  offset_buffer_.clear();
}

void TokenStoreWriter::finish() {
  check(!finished_, path_, ": finish called twice");
  const Hdf5Lock lock;
  flush();
  finished_ = true;
  tokens_.reset();
  doc_offsets_.reset();
  loss_mask_.reset();
  h5_check_status(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL), path_, "flush failed (disk full?)");
  h5_check_status(H5Fclose(file_.release()), path_, "close failed (disk full?)");
}

}  // namespace k2f::data
