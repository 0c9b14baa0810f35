// model/safetensors.cpp: byte-exact round trip of every dtype, a file written by hand in the test
// (the format read independently of the writer), and each malformed-file error naming the fault.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "model/safetensors.h"
#include "test_util.h"

namespace k2f::model {
namespace {

void write_raw(const std::string& path, const std::string& header, const std::string& data, int64_t header_len = -1) {
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = header_len < 0 ? header.size() : static_cast<uint64_t>(header_len);
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << data;
}

TEST(Safetensors, RoundTripsEveryDtype) {
  testing::ScratchDir dir("st");
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  torch::manual_seed(0);
  for (auto dtype : {torch::kFloat64, torch::kFloat32, torch::kFloat16, torch::kBFloat16, torch::kInt64, torch::kInt32,
                     torch::kInt16, torch::kInt8, torch::kUInt8, torch::kBool}) {
    tensors.emplace_back(std::string("t_") + c10::toString(dtype), (torch::randn({3, 5}) * 50).to(dtype));
  }
  tensors.emplace_back("empty", torch::zeros({0, 4}));
  write_safetensors(dir / "a.safetensors", tensors);
  SafetensorsFile file(dir / "a.safetensors");
  EXPECT_EQ(file.metadata().at("format"), "pt");
  for (const auto& [name, t] : tensors) {
    const auto loaded = file.load(name);
    EXPECT_EQ(loaded.scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(loaded, t)) << name;
  }
}

TEST(Safetensors, ReadsAHandWrittenFile) {
  testing::ScratchDir dir("st");
  const float values[3] = {1.5f, -2.0f, 3.25f};
  const uint8_t fp8[2] = {0x38, 0xC0};  // raw F8_E4M3 bytes are kept as they are
  std::string data(reinterpret_cast<const char*>(values), 12);
  data.append(reinterpret_cast<const char*>(fp8), 2);
  write_raw(dir / "h.safetensors",
            R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"q":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[12,14]}})",
            data);
  SafetensorsFile file(dir / "h.safetensors");
  EXPECT_TRUE(torch::equal(file.load("w"), torch::tensor({1.5f, -2.0f, 3.25f})));
  const auto q = file.load("q");
  EXPECT_EQ(q.numel(), 2);
  EXPECT_EQ(std::memcmp(q.data_ptr(), fp8, 2), 0);
}

struct BadFile {
  const char* what;
  std::string header;
  std::string data;
  int64_t header_len;
  std::vector<std::string> fragments;
};

TEST(Safetensors, RejectsMalformedFiles) {
  testing::ScratchDir dir("st");
  const std::string eight(8, '\0');
  const std::vector<BadFile> cases = {
      {"header length past the end", R"({})", "", 4096, {"header length 4096 runs past the end"}},
      {"invalid JSON", R"({"w": )", "", -1, {"not valid JSON"}},
      {"unknown dtype", R"({"w":{"dtype":"F12","shape":[2],"data_offsets":[0,8]}})", eight, -1,
       {"tensor \"w\"", "unknown dtype \"F12\""}},
      {"shape vs byte size", R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight, -1,
       {"tensor \"w\"", "need 12 bytes, data_offsets give 8"}},
      {"outside the file", R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", eight, -1,
       {"tensor \"w\"", "outside the file's data section (8 bytes)"}},
      {"overlap", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[1],"data_offsets":[4,8]}})",
       eight, -1, {"\"a\" [0, 8)", "\"b\" [4, 8)", "overlap"}},
      {"reversed offsets", R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}})", eight, -1, {"end before they begin"}},
  };
  for (const auto& c : cases) {
    const std::string path = dir / "bad.safetensors";
    write_raw(path, c.header, c.data, c.header_len);
    std::vector<std::string> fragments = c.fragments;
    fragments.push_back(path);
    try {
      SafetensorsFile file(path);
      ADD_FAILURE() << c.what << ": accepted";
    } catch (const Error& e) {
      for (const auto& f : fragments) EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << c.what << ": " << e.what();
    }
  }
  std::ofstream(dir / "short.safetensors") << "abc";
  testing::expect_error([&] { SafetensorsFile f(dir / "short.safetensors"); }, {"truncated", "3 bytes"});
}

TEST(Safetensors, MissingTensorIsNamed) {
  testing::ScratchDir dir("st");
  write_safetensors(dir / "a.safetensors", {{"x", torch::zeros({2})}});
  SafetensorsFile file(dir / "a.safetensors");
  testing::expect_error([&] { file.load("y"); }, {"a.safetensors", "no tensor named \"y\""});
}

}  // namespace
}  // namespace k2f::model
