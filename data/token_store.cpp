#include "data/token_store.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <sstream>

#include "base/error.h"
#include "base/isolated_call.h"

namespace k2f::data {

TokenStore::TokenStore(const std::string& path, double probe_timeout_seconds, StoreProbe probe) : path_(path) {
  check(std::filesystem::exists(path), path, ": token store not found");
  if (probe == StoreProbe::kChildProcess) probe_in_child(path, probe_timeout_seconds);
  open();
}

void TokenStore::probe_in_child(const std::string& path, double timeout_seconds) {
  constexpr int64_t kProbeTokens = 1 << 16;
  const IsolatedOutcome outcome = run_isolated([&] {
    const TokenStore store(path, timeout_seconds, StoreProbe::kNone);
    const int64_t count = std::min(store.num_tokens(), kProbeTokens);
    for (const int64_t start : {int64_t{0}, store.num_tokens() - count}) {
      store.read_tokens(start, count);
      if (store.has_loss_mask()) {
        std::vector<uint8_t> mask(static_cast<size_t>(count));
        store.read_loss_mask(start, count, mask.data());
      }
    }
  }, timeout_seconds);
  switch (outcome.kind) {
    case IsolatedOutcome::Kind::kCompleted:
      return;
    case IsolatedOutcome::Kind::kFailed:
      throw Error(outcome.message);
    case IsolatedOutcome::Kind::kCrashed: {
      std::ostringstream message;
      message << path << ": libhdf5 crashed (" << outcome.description << ") reading this file in a probe process: "
              << "the HDF5 structure is corrupt (expected a token store from `k2forge data build`; rebuild it)";
      throw Hdf5FaultInProbe(message.str());
    }
    case IsolatedOutcome::Kind::kTimedOut: {
      std::ostringstream message;
      message << path << ": libhdf5 was still reading this file's metadata after " << timeout_seconds
              << " s (a corrupt HDF5 file can make libhdf5 1.10 loop forever); expected a token store from "
              << "`k2forge data build` (rebuild it)";
      throw Hdf5FaultInProbe(message.str());
    }
  }
}

void TokenStore::open() {
  const Hdf5Lock lock;
  const std::string& path = path_;
  quiet_hdf5_errors();
  check(H5Fis_hdf5(path.c_str()) > 0, path, ": not an HDF5 file (corrupt or truncated? expected a token store from ",
        "k2forge data build)");
  file_ = h5_check(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), path,
                   "cannot open the HDF5 file (corrupt or truncated?)");
  read_attributes();
  tokens_ = open_dataset("tokens", true);
  check_integer_dataset(tokens_, "tokens", 4, true, &num_tokens_);
  check(num_tokens_ > 0, path, ": /tokens is empty (a store needs at least one document)");
  doc_offsets_dataset_ = open_dataset("doc_offsets", true);
  read_doc_offsets();
  loss_mask_ = open_dataset("loss_mask", false);
  if (loss_mask_.valid()) {
    int64_t length = 0;
    check_integer_dataset(loss_mask_, "loss_mask", 1, false, &length);
    check(length == num_tokens_, path, ": /loss_mask has ", length, " entries, expected ", num_tokens_,
          " (one per token)");
  }
}

H5Handle TokenStore::open_dataset(const std::string& name, bool required) const {
  const htri_t exists = H5Lexists(file_.get(), name.c_str(), H5P_DEFAULT);
  if (exists <= 0) {
    check(!required, path_, ": dataset /", name, " is missing (expected /tokens, /doc_offsets, optional /loss_mask)");
    return H5Handle();
  }
  const H5Handle access = h5_check(H5Pcreate(H5P_DATASET_ACCESS), path_, "cannot create properties");
  h5_check_status(H5Pset_chunk_cache(access.get(), 521, 4 << 20, 0.75), path_, "cannot set the chunk cache");
  return h5_check(H5Dopen2(file_.get(), name.c_str(), access.get()), path_,
                  "cannot open dataset /" + name + " (corrupt file?)");
}

void TokenStore::check_integer_dataset(const H5Handle& dataset, const std::string& name, size_t bytes, bool is_signed,
                                       int64_t* length) const {
  const H5Handle type = h5_check(H5Dget_type(dataset.get()), path_, "cannot read the type of /" + name);
  const bool ok = H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_size(type.get()) == bytes &&
                  (H5Tget_sign(type.get()) == H5T_SGN_2) == is_signed;
  check(ok, path_, ": /", name, " must be ", is_signed ? "int" : "uint", bytes * 8, ", got another type");
  const H5Handle space = h5_check(H5Dget_space(dataset.get()), path_, "cannot read the shape of /" + name);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  check(rank == 1, path_, ": /", name, " must be 1-dimensional, got rank ", rank);
  hsize_t dims[1] = {0};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  *length = static_cast<int64_t>(dims[0]);
  check_storage_holds(dataset, name, dims[0], bytes);
}

// libhdf5 1.10 trusts a layout message when it reads: a compact dataset whose stored bytes are
// fewer than its shape needs, or contiguous data placed past the end of the file, crashes inside
// H5Dread (fuzz/fuzz_token_store found both). Chunked data (what k2forge writes) is read chunk by
// chunk through checked B-tree lookups and needs no such test.
void TokenStore::check_storage_holds(const H5Handle& dataset, const std::string& name, hsize_t length,
                                     size_t bytes) const {
  const H5Handle create = h5_check(H5Dget_create_plist(dataset.get()), path_, "cannot read the layout of /" + name);
  const H5D_layout_t layout = H5Pget_layout(create.get());
  check(layout >= 0, path_, ": cannot read the layout of /", name, " (corrupt file?)");
  if (layout != H5D_COMPACT && layout != H5D_CONTIGUOUS) return;
  const hsize_t stored = H5Dget_storage_size(dataset.get());
  check(length <= std::numeric_limits<hsize_t>::max() / bytes && stored == length * bytes, path_, ": /", name,
        " stores ", stored, " bytes but its shape (", length, " entries of ", bytes, " bytes) needs ", length * bytes,
        " (corrupt or truncated file?)");
  if (layout != H5D_CONTIGUOUS || stored == 0) return;
  const haddr_t offset = H5Dget_offset(dataset.get());
  hsize_t file_size = 0;
  h5_check_status(H5Fget_filesize(file_.get(), &file_size), path_, "cannot read the file size");
  check(offset != HADDR_UNDEF && offset <= file_size && stored <= file_size - offset, path_, ": /", name,
        "'s data lies outside the file (", stored, " bytes at offset ", offset, ", file of ", file_size,
        " bytes; corrupt or truncated file?)");
}

namespace {

// "sha256:" + 64 hex digits, with room for other digests; a larger size is a corrupt type.
constexpr size_t kMaxTokenizerHashBytes = 256;

}  // namespace

void TokenStore::read_attributes() {
  auto open_attribute = [&](const char* name) {
    check(H5Aexists(file_.get(), name) > 0, path_, ": attribute \"", name,
          "\" is missing (expected format_version, vocab_size, tokenizer_hash)");
    return h5_check(H5Aopen(file_.get(), name, H5P_DEFAULT), path_, std::string("cannot open attribute ") + name);
  };
  auto read_int = [&](const char* name) {
    const H5Handle attribute = open_attribute(name);
    const H5Handle type = h5_check(H5Aget_type(attribute.get()), path_, "cannot read an attribute type");
    check(H5Tget_class(type.get()) == H5T_INTEGER, path_, ": attribute ", name, " must be an integer");
    int64_t value = 0;
    h5_check_status(H5Aread(attribute.get(), H5T_NATIVE_INT64, &value), path_, std::string("cannot read ") + name);
    return value;
  };
  const int64_t version = read_int("format_version");
  check(version == kTokenStoreFormatVersion, path_, ": format_version ", version, ", expected ",
        kTokenStoreFormatVersion);
  vocab_size_ = read_int("vocab_size");
  check(vocab_size_ > 0, path_, ": vocab_size attribute ", vocab_size_, " must be positive");
  const H5Handle attribute = open_attribute("tokenizer_hash");
  const H5Handle type = h5_check(H5Aget_type(attribute.get()), path_, "cannot read an attribute type");
  check(H5Tget_class(type.get()) == H5T_STRING, path_, ": attribute tokenizer_hash must be a string");
  // Fixed-length only, as the writer makes it: a variable-length string lives in HDF5's global
  // heap, and libhdf5 1.10 can loop without end on a corrupt one (found by fuzz/fuzz_token_store).
  check(H5Tis_variable_str(type.get()) == 0, path_, ": attribute tokenizer_hash is a variable-length string; ",
        "k2forge stores hold a fixed-length one (rebuild the store with `k2forge data build`)");
  const size_t size = H5Tget_size(type.get());
  check(size > 0 && size <= kMaxTokenizerHashBytes, path_, ": attribute tokenizer_hash has ", size,
        " bytes, expected at most ", kMaxTokenizerHashBytes, " (\"sha256:\" and 64 hex digits)");
  std::string value(size, '\0');
  h5_check_status(H5Aread(attribute.get(), type.get(), value.data()), path_, "cannot read tokenizer_hash");
  tokenizer_hash_ = value.substr(0, value.find('\0'));
}

void TokenStore::read_doc_offsets() {
  int64_t length = 0;
  check_integer_dataset(doc_offsets_dataset_, "doc_offsets", 8, true, &length);
  check(length >= 2, path_, ": /doc_offsets has ", length, " entries, expected at least 2 (one document)");
  // Offsets rise strictly from 0 to the token count, so there are at most num_tokens + 1 of them;
  // checked before reading so a corrupt length cannot size a huge buffer.
  check(length <= num_tokens_ + 1, path_, ": /doc_offsets has ", length, " entries, more than /tokens (",
        num_tokens_, ") plus one");
  doc_offsets_.resize(length);
  read_range(doc_offsets_dataset_, H5T_NATIVE_INT64, "doc_offsets", 0, length, doc_offsets_.data());
  check(doc_offsets_[0] == 0, path_, ": /doc_offsets[0] is ", doc_offsets_[0], ", expected 0");
  for (int64_t i = 1; i < length; ++i)
    check(doc_offsets_[i] > doc_offsets_[i - 1], path_, ": /doc_offsets[", i, "] = ", doc_offsets_[i],
          " must exceed /doc_offsets[", i - 1, "] = ", doc_offsets_[i - 1]);
  check(doc_offsets_.back() == num_tokens_, path_, ": /doc_offsets ends at ", doc_offsets_.back(), ", expected ",
        num_tokens_, " (the length of /tokens)");
}

void TokenStore::read_range(const H5Handle& dataset, hid_t memory_type, const char* name, int64_t start, int64_t count,
                            void* out) const {
  const Hdf5Lock lock;
  quiet_hdf5_errors();
  const H5Handle file_space = h5_check(H5Dget_space(dataset.get()), path_, "cannot get a dataspace");
  const hsize_t offset[1] = {static_cast<hsize_t>(start)}, length[1] = {static_cast<hsize_t>(count)};
  h5_check_status(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, offset, nullptr, length, nullptr), path_,
                  "cannot select a hyperslab");
  const H5Handle memory_space = h5_check(H5Screate_simple(1, length, nullptr), path_, "cannot create a dataspace");
  const herr_t status = H5Dread(dataset.get(), memory_type, memory_space.get(), file_space.get(), H5P_DEFAULT, out);
  check(status >= 0, path_, ": reading /", name, " [", start, ", ", start + count,
        ") failed (corrupt or truncated file?)");
}

void TokenStore::read_tokens(int64_t start, int64_t count, int32_t* out) const {
  check(start >= 0 && count >= 0 && start + count <= num_tokens_, path_, ": token range [", start, ", ", start + count,
        ") is outside [0, ", num_tokens_, ")");
  read_range(tokens_, H5T_NATIVE_INT32, "tokens", start, count, out);
}

void TokenStore::read_loss_mask(int64_t start, int64_t count, uint8_t* out) const {
  check(has_loss_mask(), path_, ": has no /loss_mask");
  check(start >= 0 && count >= 0 && start + count <= num_tokens_, path_, ": loss_mask range [", start, ", ",
        start + count, ") is outside [0, ", num_tokens_, ")");
  read_range(loss_mask_, H5T_NATIVE_UINT8, "loss_mask", start, count, out);
}

std::vector<int32_t> TokenStore::read_tokens(int64_t start, int64_t count) const {
  std::vector<int32_t> out(count);
  read_tokens(start, count, out.data());
  return out;
}

}  // namespace k2f::data
