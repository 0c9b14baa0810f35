// The safetensors format in C++: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets}}, then the raw bytes. Files are memory-mapped and fully
// validated on open (header bounds, JSON, dtype, shape vs byte size, offsets inside the data
// and not overlapping), so a bad file fails with the file and tensor named, before any use.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "base/json_io.h"

namespace k2f::model {

// The index of a sharded HF checkpoint directory (tensor name -> shard file).
inline constexpr const char* kSafetensorsIndexFile = "model.safetensors.index.json";

enum class StDtype { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F8_E4M3 };

const char* dtype_name(StDtype dtype);
size_t dtype_size(StDtype dtype);
// torch dtype that holds the bytes unchanged (F8_E4M3 -> uint8 on LibTorch without float8).
torch::ScalarType torch_dtype(StDtype dtype);
StDtype st_dtype_of(torch::ScalarType dtype);

struct TensorEntry {
  std::string name;
  StDtype dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets inside the data section
  uint64_t end = 0;
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // maps and validates
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  bool contains(const std::string& name) const { return entries_.count(name) > 0; }
  const TensorEntry& entry(const std::string& name) const;  // throws naming file and tensor
  std::vector<std::string> names() const;
  const Json& metadata() const { return metadata_; }
  // The tensor's bytes in the mapping (no copy).
  const uint8_t* data(const TensorEntry& entry) const { return data_ + entry.begin; }
  // An owned copy with the stored dtype (see torch_dtype).
  torch::Tensor load(const std::string& name) const;

 private:
  void parse_header(const std::string& header_json);
  void release_pages(const TensorEntry& entry) const;
  std::string path_;
  void* mapping_ = nullptr;
  size_t file_size_ = 0;
  const uint8_t* data_ = nullptr;
  uint64_t data_size_ = 0;
  std::map<std::string, TensorEntry> entries_;
  Json metadata_ = Json::object();
};

// Copies tensor `name` of `file` into `target` (converting floating dtypes), after checking that
// it exists and that its shape and dtype fit: "expected shape [..], got [..]" naming file and tensor.
void load_into(const SafetensorsFile& file, const std::string& name, torch::Tensor& target);

// Writes the tensors (contiguous copies taken as needed) in the given order to `path`
// atomically. Metadata values must be strings (format rule).
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// Bytes the tensor takes in a safetensors file.
uint64_t stored_bytes(const torch::Tensor& tensor);

}  // namespace k2f::model
