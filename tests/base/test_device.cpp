// base/device.cpp: device names parse or fail with a message naming the source and the value; a
// CUDA device on a CPU build is refused with the reason instead of crashing later.
#include <gtest/gtest.h>

#include "base/device.h"
#include "test_util.h"

namespace k2f {
namespace {

TEST(Device, CpuParsesAndStaysOnEveryRank) {
  const auto cpu = parse_device("cpu", "train.device");
  EXPECT_TRUE(cpu.is_cpu());
  EXPECT_TRUE(device_for_local_rank(cpu, 3).is_cpu());
  synchronize(cpu);  // a no-op, must not throw
}

TEST(Device, MalformedNamesNameTheSourceAndTheValue) {
  testing::expect_error([] { parse_device("gpu", "train.device"); }, {"train.device", "\"gpu\"", "cpu, cuda or cuda:N"});
  testing::expect_error([] { parse_device("", "train.device"); }, {"train.device", "cpu, cuda or cuda:N"});
  if (!built_with_cuda()) return;  // the index is parsed only where CUDA could be used
  testing::expect_error([] { parse_device("cuda:x", "train.device"); }, {"train.device", "\"cuda:x\"", "index"});
  testing::expect_error([] { parse_device("cuda:-1", "train.device"); }, {"index"});
}

TEST(Device, CudaNeedsACudaBuildAndAVisibleGpu) {
  if (!built_with_cuda()) {
    EXPECT_EQ(cuda_device_count(), 0);
    testing::expect_error([] { parse_device("cuda", "train.device"); },
                          {"train.device", "\"cuda\"", "without CUDA"});
    return;
  }
  if (cuda_device_count() == 0) {
    testing::expect_error([] { parse_device("cuda", "train.device"); }, {"no CUDA device is visible"});
    return;
  }
  EXPECT_EQ(parse_device("cuda", "train.device"), c10::Device(c10::kCUDA, 0));
  const int count = cuda_device_count();
  EXPECT_EQ(device_for_local_rank(parse_device("cuda", "x"), count + 1), c10::Device(c10::kCUDA, 1 % count));
  testing::expect_error([&] { parse_device("cuda:" + std::to_string(count), "train.device"); }, {"visible"});
}

}  // namespace
}  // namespace k2f
