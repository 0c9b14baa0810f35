// train/tensorboard.cpp: CRC-32C against the standard check value, and an event file decoded by
// hand here (TFRecord framing, then the protobuf fields TensorBoard reads).
#include <gtest/gtest.h>

#include <cstring>

#include "base/crc32c.h"
#include "base/json_io.h"
#include "test_util.h"
#include "train/tensorboard.h"

namespace k2f::train {
namespace {

uint64_t read_varint(const std::string& s, size_t& at) {
  uint64_t value = 0;
  for (int shift = 0;; shift += 7) {
    const auto byte = static_cast<uint8_t>(s[at++]);
    value |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if (!(byte & 0x80)) return value;
  }
}

TEST(Crc32c, StandardCheckValue) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  // Incremental equals one shot.
  EXPECT_EQ(crc32c("6789", 4, crc32c("12345", 5)), 0xE3069283u);
}

TEST(TensorBoard, EventFileDecodes) {
  testing::ScratchDir dir("tb");
  std::string path;
  {
    TensorBoardWriter writer(dir.str());
    writer.add_scalars(7, {{"train/loss", 2.5}});
    path = writer.path();
  }
  const std::string bytes = read_text_file(path);
  size_t at = 0;
  std::vector<std::string> payloads;
  while (at < bytes.size()) {
    uint64_t length = 0;
    std::memcpy(&length, bytes.data() + at, 8);
    uint32_t length_crc = 0, data_crc = 0;
    std::memcpy(&length_crc, bytes.data() + at + 8, 4);
    EXPECT_EQ(length_crc, masked_crc32c(bytes.substr(at, 8)));
    const std::string payload = bytes.substr(at + 12, length);
    std::memcpy(&data_crc, bytes.data() + at + 12 + length, 4);
    EXPECT_EQ(data_crc, masked_crc32c(payload));
    payloads.push_back(payload);
    at += 12 + length + 4;
  }
  ASSERT_EQ(payloads.size(), 2u);
  EXPECT_NE(payloads[0].find("brain.Event:2"), std::string::npos);
  // Event: wall_time (0x09, 8 bytes), step (0x10 varint), summary (0x2a, length-delimited).
  const std::string& e = payloads[1];
  size_t p = 0;
  EXPECT_EQ(static_cast<uint8_t>(e[p++]), 0x09);
  p += 8;
  EXPECT_EQ(static_cast<uint8_t>(e[p++]), 0x10);
  EXPECT_EQ(read_varint(e, p), 7u);
  EXPECT_EQ(static_cast<uint8_t>(e[p++]), 0x2a);
  read_varint(e, p);
  EXPECT_EQ(static_cast<uint8_t>(e[p++]), 0x0a);  // Summary.value
  read_varint(e, p);
  EXPECT_EQ(static_cast<uint8_t>(e[p++]), 0x0a);  // Value.tag
  const auto tag_length = read_varint(e, p);
  EXPECT_EQ(e.substr(p, tag_length), "train/loss");
  p += tag_length;
  EXPECT_EQ(static_cast<uint8_t>(e[p++]), 0x15);  // Value.simple_value
  float value = 0;
  std::memcpy(&value, e.data() + p, 4);
  EXPECT_EQ(value, 2.5f);
}

}  // namespace
}  // namespace k2f::train
