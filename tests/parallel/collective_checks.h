// Every collective of parallel/comm.h on a group of one rank, with tensors on a given device:
// the values come back unchanged and where they were, whichever device the group's backend takes
// (Gloo and NCCL; CPU and GPU tensors). Shared by the CPU unit tests and the GPU tests.
#pragma once

#include <gtest/gtest.h>

#include "parallel/all_to_all.h"
#include "parallel/comm.h"

namespace k2f::testing {

inline void expect_collectives_keep_values_and_device(const parallel::Group& group, const c10::Device& device) {
  ASSERT_EQ(group->getSize(), 1);
  const auto on_device = torch::TensorOptions().device(device);
  const auto ramp = torch::arange(6, on_device.dtype(torch::kFloat32)).view({2, 3});
  const auto same = [&](const torch::Tensor& got, const torch::Tensor& want, const char* what) {
    EXPECT_EQ(got.device(), device) << what;
    EXPECT_TRUE(torch::equal(got.cpu(), want.cpu())) << what;
  };

  auto sum = ramp.clone();
  parallel::all_reduce_sum(group, sum);
  same(sum, ramp, "all_reduce_sum");
  auto maximum = ramp.clone();
  parallel::all_reduce_max(group, maximum);
  same(maximum, ramp, "all_reduce_max");
  auto root_value = ramp.clone();
  parallel::broadcast(group, root_value, 0);
  same(root_value, ramp, "broadcast");

  // A transposed view: the collective works on a contiguous copy and writes the result back into it.
  auto storage = ramp.clone();
  auto transposed = storage.t();
  parallel::all_reduce_sum(group, transposed);
  same(storage, ramp, "all_reduce_sum of a transposed view");

  const auto gathered = parallel::all_gather(group, ramp.to(torch::kInt64));
  ASSERT_EQ(gathered.size(), 1u);
  same(gathered[0], ramp.to(torch::kInt64), "all_gather");
  EXPECT_EQ(parallel::all_gather_strings(group, "rank 0: héllo"), std::vector<std::string>{"rank 0: héllo"});

  const auto rows = torch::randn({3, 4}, on_device.dtype(torch::kBFloat16));
  same(parallel::all_to_all_rows(group, rows, {3}, {3}), rows, "all_to_all_rows");

  const auto named = parallel::gather_named_tensors(group, {{"w", ramp}});
  ASSERT_EQ(named.size(), 1u);
  EXPECT_EQ(named[0].first, "w");
  same(named[0].second, ramp, "gather_named_tensors");
}

}  // namespace k2f::testing
