#include "train/tensorboard.h"

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>

#include "base/crc32c.h"
#include "base/error.h"

namespace k2f::train {
namespace {

void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

template <typename T>
void put_fixed(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

// A length-delimited field (wire type 2).
void put_bytes_field(std::string& out, int field, const std::string& bytes) {
  put_varint(out, (static_cast<uint64_t>(field) << 3) | 2);
  put_varint(out, bytes.size());
  out += bytes;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t masked_crc32c(const std::string& bytes) {
  const uint32_t crc = crc32c(bytes.data(), bytes.size());
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string encode_scalar_event(double wall_time, int64_t step, const std::vector<std::pair<std::string, double>>& scalars) {
  std::string summary;
  for (const auto& [tag, value] : scalars) {
    std::string summary_value;
    put_bytes_field(summary_value, 1, tag);  // Summary.Value.tag
    put_varint(summary_value, (2 << 3) | 5);  // Summary.Value.simple_value (float)
    put_fixed(summary_value, static_cast<float>(value));
    put_bytes_field(summary, 1, summary_value);  // Summary.value
  }
  std::string event;
  put_varint(event, (1 << 3) | 1);  // Event.wall_time (double)
  put_fixed(event, wall_time);
  put_varint(event, (2 << 3) | 0);  // Event.step
  put_varint(event, static_cast<uint64_t>(step));
  put_bytes_field(event, 5, summary);  // Event.summary
  return event;
}

TensorBoardWriter::TensorBoardWriter(const std::string& log_dir) {
  std::filesystem::create_directories(log_dir);
  char host[256] = "localhost";
  ::gethostname(host, sizeof(host) - 1);
  path_ = (std::filesystem::path(log_dir) /
           ("events.out.tfevents." + std::to_string(static_cast<int64_t>(now_seconds())) + "." + host + "." +
            std::to_string(::getpid())))
              .string();
  out_.open(path_, std::ios::binary | std::ios::app);
  check(out_.good(), path_, ": cannot open for writing");
  std::string event;
  put_varint(event, (1 << 3) | 1);
  put_fixed(event, now_seconds());
  put_bytes_field(event, 3, "brain.Event:2");  // Event.file_version
  write_record(event);
}

void TensorBoardWriter::add_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& scalars) {
  write_record(encode_scalar_event(now_seconds(), step, scalars));
}

void TensorBoardWriter::write_record(const std::string& payload) {
  std::string length;
  put_fixed(length, static_cast<uint64_t>(payload.size()));
  std::string record = length;
  put_fixed(record, masked_crc32c(length));
  record += payload;
  put_fixed(record, masked_crc32c(payload));
  out_.write(record.data(), static_cast<std::streamsize>(record.size()));
  out_.flush();
}

}  // namespace k2f::train
