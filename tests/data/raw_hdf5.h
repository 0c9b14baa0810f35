// Raw HDF5 access for the tests, written against the C API directly (not data/): reading a
// store's datasets back independently of TokenStore, and writing stores with chosen defects.
#pragma once

#include <hdf5.h>

#include <optional>
#include <string>
#include <vector>

namespace k2f::testing {

template <typename T>
std::vector<T> read_raw_dataset(const std::string& path, const std::string& name, hid_t memory_type) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t dataset = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  const hid_t space = H5Dget_space(dataset);
  hsize_t dims[1] = {0};
  H5Sget_simple_extent_dims(space, dims, nullptr);
  std::vector<T> values(dims[0]);
  if (dims[0] > 0) H5Dread(dataset, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  H5Sclose(space);
  H5Dclose(dataset);
  H5Fclose(file);
  return values;
}

inline int64_t read_raw_int_attribute(const std::string& path, const char* name) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t attribute = H5Aopen(file, name, H5P_DEFAULT);
  int64_t value = -1;
  H5Aread(attribute, H5T_NATIVE_INT64, &value);
  H5Aclose(attribute);
  H5Fclose(file);
  return value;
}

// A store with exactly the given contents (contiguous datasets, no filters).
struct RawStore {
  std::vector<int32_t> tokens;
  std::vector<int64_t> doc_offsets;
  bool tokens_as_float = false;
  bool with_doc_offsets = true;
  std::optional<int64_t> format_version = 1, vocab_size = 100;
  std::optional<std::string> tokenizer_hash = std::string("sha256:test");
  bool hash_variable_length = false;  // as h5py writes strings; k2forge refuses it
};

inline void write_raw_store(const std::string& path, const RawStore& spec) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  auto write_dataset = [&](const char* name, hid_t file_type, hid_t memory_type, const void* data, size_t count) {
    const hsize_t dims[1] = {count};
    const hid_t space = H5Screate_simple(1, dims, nullptr);
    const hid_t dataset = H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (count > 0) H5Dwrite(dataset, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(dataset);
    H5Sclose(space);
  };
  if (spec.tokens_as_float) {
    std::vector<float> values(spec.tokens.begin(), spec.tokens.end());
    write_dataset("tokens", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, values.data(), values.size());
  } else {
    write_dataset("tokens", H5T_STD_I32LE, H5T_NATIVE_INT32, spec.tokens.data(), spec.tokens.size());
  }
  if (spec.with_doc_offsets)
    write_dataset("doc_offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, spec.doc_offsets.data(), spec.doc_offsets.size());
  const hid_t scalar = H5Screate(H5S_SCALAR);
  auto write_int = [&](const char* name, int64_t value) {
    const hid_t attribute = H5Acreate2(file, name, H5T_STD_I64LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attribute, H5T_NATIVE_INT64, &value);
    H5Aclose(attribute);
  };
  if (spec.format_version) write_int("format_version", *spec.format_version);
  if (spec.vocab_size) write_int("vocab_size", *spec.vocab_size);
  if (spec.tokenizer_hash) {
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, spec.hash_variable_length ? H5T_VARIABLE : spec.tokenizer_hash->size());
    const hid_t attribute = H5Acreate2(file, "tokenizer_hash", type, scalar, H5P_DEFAULT, H5P_DEFAULT);
    const char* text = spec.tokenizer_hash->c_str();
    if (spec.hash_variable_length) {
      H5Awrite(attribute, type, &text);
    } else {
      H5Awrite(attribute, type, text);
    }
    H5Aclose(attribute);
    H5Tclose(type);
  }
  H5Sclose(scalar);
  H5Fclose(file);
}

}  // namespace k2f::testing
