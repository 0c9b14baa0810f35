// TensorBoard event files written directly: TFRecord framing (length, masked CRC-32C, payload,
// masked CRC-32C) around hand-encoded `Event` protobufs holding scalar summaries. Avoids a
// protobuf code-generation step for the three message fields TensorBoard needs.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace k2f::train {

class TensorBoardWriter {
 public:
  // Creates events.out.tfevents.<time>.<host> in `log_dir` and writes the file_version event.
  explicit TensorBoardWriter(const std::string& log_dir);
  void add_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& scalars);
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& payload);
  std::string path_;
  std::ofstream out_;
};

// Exposed for tests: the framing and encodings TensorBoard expects.
uint32_t masked_crc32c(const std::string& bytes);
std::string encode_scalar_event(double wall_time, int64_t step, const std::vector<std::pair<std::string, double>>& scalars);

}  // namespace k2f::train
