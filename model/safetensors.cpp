#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "base/error.h"
#include "base/torch_compat.h"

namespace k2f::model {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the format's own limit

struct DtypeInfo {
  StDtype dtype;
  const char* name;
  size_t size;
};
constexpr DtypeInfo kDtypes[] = {
    {StDtype::F64, "F64", 8}, {StDtype::F32, "F32", 4},  {StDtype::F16, "F16", 2},
    {StDtype::BF16, "BF16", 2}, {StDtype::I64, "I64", 8}, {StDtype::I32, "I32", 4},
    {StDtype::I16, "I16", 2},  {StDtype::I8, "I8", 1},   {StDtype::U8, "U8", 1},
    {StDtype::BOOL, "BOOL", 1}, {StDtype::F8_E4M3, "F8_E4M3", 1},
};

const DtypeInfo& info(StDtype dtype) {
  for (const auto& d : kDtypes)
    if (d.dtype == dtype) return d;
  fail("safetensors: unknown dtype enum");
}

bool parse_dtype(const std::string& name, StDtype& out) {
  for (const auto& d : kDtypes) {
    if (name == d.name) {
      out = d.dtype;
      return true;
    }
  }
  return false;
}

}  // namespace

const char* dtype_name(StDtype dtype) { return info(dtype).name; }
size_t dtype_size(StDtype dtype) { return info(dtype).size; }

torch::ScalarType torch_dtype(StDtype dtype) {
  switch (dtype) {
    case StDtype::F64: return torch::kFloat64;
    case StDtype::F32: return torch::kFloat32;
    case StDtype::F16: return torch::kFloat16;
    case StDtype::BF16: return torch::kBFloat16;
    case StDtype::I64: return torch::kInt64;
    case StDtype::I32: return torch::kInt32;
    case StDtype::I16: return torch::kInt16;
    case StDtype::I8: return torch::kInt8;
    case StDtype::U8: return torch::kUInt8;
    case StDtype::BOOL: return torch::kBool;
    case StDtype::F8_E4M3:
#if K2F_HAS_FLOAT8
      return at::ScalarType::Float8_e4m3fn;
#else
      return torch::kUInt8;
#endif
  }
  fail("safetensors: unknown dtype enum");
}

StDtype st_dtype_of(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat64: return StDtype::F64;
    case torch::kFloat32: return StDtype::F32;
    case torch::kFloat16: return StDtype::F16;
    case torch::kBFloat16: return StDtype::BF16;
    case torch::kInt64: return StDtype::I64;
    case torch::kInt32: return StDtype::I32;
    case torch::kInt16: return StDtype::I16;
    case torch::kInt8: return StDtype::I8;
    case torch::kUInt8: return StDtype::U8;
    case torch::kBool: return StDtype::BOOL;
    default:
#if K2F_HAS_FLOAT8
      if (dtype == at::ScalarType::Float8_e4m3fn) return StDtype::F8_E4M3;
#endif
      fail("safetensors: torch dtype ", c10::toString(dtype), " has no safetensors equivalent here");
  }
}

int64_t TensorEntry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  check(fd >= 0, path, ": cannot open safetensors file");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail(path, ": cannot stat");
  }
  file_size_ = static_cast<size_t>(st.st_size);
  if (file_size_ < 8) {
    ::close(fd);
    fail(path, ": truncated safetensors file: ", file_size_, " bytes, expected at least 8 (header length)");
  }
  mapping_ = ::mmap(nullptr, file_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  check(mapping_ != MAP_FAILED, path, ": mmap failed");
  const auto* bytes = static_cast<const uint8_t*>(mapping_);
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes, 8);  // little-endian host (x86-64, aarch64)
  try {
    check(header_size <= kMaxHeaderBytes, path, ": header length ", header_size, " exceeds the format limit of ",
          kMaxHeaderBytes, " bytes");
    check(8 + header_size <= file_size_, path, ": header length ", header_size, " runs past the end of the file (",
          file_size_, " bytes)");
    data_ = bytes + 8 + header_size;
    data_size_ = file_size_ - 8 - header_size;
    parse_header(std::string(reinterpret_cast<const char*>(bytes + 8), header_size));
  } catch (...) {
    ::munmap(mapping_, file_size_);
    mapping_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, file_size_);
}

void SafetensorsFile::parse_header(const std::string& header_json) {
  Json header;
  try {
    header = Json::parse(header_json);
  } catch (const Json::parse_error& e) {
    fail(path_, ": header is not valid JSON: ", e.what());
  }
  check(header.is_object(), path_, ": header must be a JSON object");
  std::vector<const TensorEntry*> by_offset;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const Json& value = it.value();
    if (name == "__metadata__") {
      check(value.is_object(), path_, ": __metadata__ must be an object");
      metadata_ = value;
      continue;
    }
    const std::string where = path_ + ": tensor \"" + name + "\"";
    check(value.is_object() && value.contains("dtype") && value.contains("shape") && value.contains("data_offsets"),
          where, ": expected an object with dtype, shape and data_offsets");
    TensorEntry entry;
    entry.name = name;
    check(value["dtype"].is_string() && parse_dtype(value["dtype"].get<std::string>(), entry.dtype), where,
          ": unknown dtype ", value["dtype"].dump());
    check(value["shape"].is_array(), where, ": shape must be an array");
    for (const auto& d : value["shape"]) {
      check(d.is_number_integer() && d.get<int64_t>() >= 0, where, ": shape ", value["shape"].dump(),
            " must hold non-negative integers");
      entry.shape.push_back(d.get<int64_t>());
    }
    const Json& offsets = value["data_offsets"];
    check(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
              offsets[1].is_number_unsigned(),
          where, ": data_offsets must be two non-negative integers, got ", offsets.dump());
    entry.begin = offsets[0].get<uint64_t>();
    entry.end = offsets[1].get<uint64_t>();
    check(entry.begin <= entry.end, where, ": data_offsets ", offsets.dump(), " end before they begin");
    check(entry.end <= data_size_, where, ": data_offsets ", offsets.dump(), " lie outside the file's data section (",
          data_size_, " bytes)");
    const uint64_t expected = static_cast<uint64_t>(entry.numel()) * dtype_size(entry.dtype);
    check(entry.end - entry.begin == expected, where, ": dtype ", dtype_name(entry.dtype), " and shape ",
          value["shape"].dump(), " need ", expected, " bytes, data_offsets give ", entry.end - entry.begin);
    entries_.emplace(name, std::move(entry));
  }
  for (const auto& [name, entry] : entries_) by_offset.push_back(&entry);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorEntry* a, const TensorEntry* b) { return a->begin < b->begin; });
  const TensorEntry* furthest = nullptr;  // the entry reaching furthest so far
  for (const auto* current : by_offset) {
    if (current->begin == current->end) continue;
    if (furthest != nullptr) {
      check(current->begin >= furthest->end, path_, ": tensors \"", furthest->name, "\" [", furthest->begin, ", ",
            furthest->end, ") and \"", current->name, "\" [", current->begin, ", ", current->end, ") overlap");
    }
    if (furthest == nullptr || current->end > furthest->end) furthest = current;
  }
}

const TensorEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = entries_.find(name);
  check(it != entries_.end(), path_, ": no tensor named \"", name, "\"");
  return it->second;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& [name, entry] : entries_) out.push_back(name);
  return out;
}

torch::Tensor SafetensorsFile::load(const std::string& name) const {
  const auto& e = entry(name);
  auto tensor = torch::empty(e.shape, torch::TensorOptions().dtype(torch_dtype(e.dtype)));
  if (e.end > e.begin) {
    std::memcpy(tensor.data_ptr(), data(e), e.end - e.begin);
    release_pages(e);
  }
  return tensor;
}

void SafetensorsFile::release_pages(const TensorEntry& e) const {
  // The bytes are copied: drop the mapped pages from this process (they stay in the page cache),
  // so streaming a model tensor by tensor keeps the resident set at one tensor, not the file.
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(data(e));
  const auto end = begin + (e.end - e.begin);
  const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;  // whole pages inside
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

void load_into(const SafetensorsFile& file, const std::string& name, torch::Tensor& target) {
  check(file.contains(name), file.path(), ": no tensor named \"", name, "\"");
  const auto& e = file.entry(name);
  check(e.shape == target.sizes().vec(), file.path(), ": tensor \"", name, "\": expected shape ", target.sizes(),
        ", got ", torch::IntArrayRef(e.shape));
  const bool want_float = target.is_floating_point();
  const bool have_float = e.dtype == StDtype::F64 || e.dtype == StDtype::F32 || e.dtype == StDtype::F16 ||
                          e.dtype == StDtype::BF16;
  check(want_float == have_float, file.path(), ": tensor \"", name, "\": expected ",
        want_float ? "a floating dtype (BF16, F16, F32)" : "an integer dtype", ", got ", dtype_name(e.dtype),
        e.dtype == StDtype::F8_E4M3 ? " (FP8 block-scaled weights are read by the quantised importer)" : "");
  torch::NoGradGuard no_grad;
  target.copy_(file.load(name));
}

uint64_t stored_bytes(const torch::Tensor& tensor) {
  return static_cast<uint64_t>(tensor.numel()) * dtype_size(st_dtype_of(tensor.scalar_type()));
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    check(name != "__metadata__" && !header.contains(name), path, ": duplicate or reserved tensor name \"", name, "\"");
    const uint64_t bytes = stored_bytes(tensor);
    header[name] = {{"dtype", dtype_name(st_dtype_of(tensor.scalar_type()))},
                    {"shape", tensor.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  const uint64_t header_size = header_text.size();

  const std::string temporary = path + ".tmp." + std::to_string(::getpid());
  std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
  check(out.good(), temporary, ": cannot open for writing");
  out.write(reinterpret_cast<const char*>(&header_size), 8);
  out.write(header_text.data(), static_cast<std::streamsize>(header_size));
  for (const auto& [name, tensor] : tensors) {
    const auto cpu = tensor.detach().to(torch::kCPU).contiguous();
    out.write(static_cast<const char*>(cpu.data_ptr()), static_cast<std::streamsize>(stored_bytes(cpu)));
  }
  out.flush();
  const bool ok = out.good();
  out.close();
  if (!ok) {
    std::remove(temporary.c_str());
    fail(path, ": write failed (disk full or no permission?)");
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::remove(temporary.c_str());
    fail(path, ": cannot rename ", temporary, " into place");
  }
}

}  // namespace k2f::model
