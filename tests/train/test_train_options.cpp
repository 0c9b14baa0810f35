// train/train_options.cpp: the process-group backend of the mesh (parallel.backend) follows the
// device, and the combinations that cannot work are refused with the keys and values.
#include <gtest/gtest.h>

#include "test_util.h"
#include "tests/train/trainer_fixture.h"
#include "train/train_options.h"

namespace k2f::train {
namespace {

TEST(TrainOptions, GroupBackendFollowsTheDeviceUnlessNamed) {
  TrainOptions o;
  EXPECT_EQ(o.group_backend(), "gloo");
  o.device = "cuda:1";
  EXPECT_EQ(o.group_backend(), "nccl");
  o.backend = "gloo";
  EXPECT_EQ(o.group_backend(), "gloo");
  o.device = "cpu";
  o.backend = "nccl";
  EXPECT_EQ(o.group_backend(), "nccl");
}

TEST(TrainOptions, BackendCombinationsThatCannotWorkAreRefused) {
  testing::ScratchDir dir("train-options");
  auto o = testing::tiny_train_options(dir, "run");
  o.layout.dp = 0;  // the number of ranks / parallel.pp
  EXPECT_NO_THROW(o.validate(2));  // dp 2 on Gloo
  o.backend = "mpi";
  testing::expect_error([&] { o.validate(2); }, {"parallel.backend (\"mpi\")", "auto, gloo, nccl"});
  o.backend = "nccl";
  o.layout.pp = 2;
  testing::expect_error([&] { o.validate(2); },
                        {"parallel.pp (2) over NCCL", "parallel.backend \"nccl\"", "set parallel.backend = \"gloo\""});
  o.layout.pp = 1;
  testing::expect_error([&] { o.validate(2); }, {"parallel.backend \"nccl\" needs train.device \"cuda\" (it is \"cpu\")"});
  o.backend = "gloo";
  o.layout.pp = 2;
  EXPECT_NO_THROW(o.validate(2));  // a pipeline over Gloo
  o.backend = "auto";
  EXPECT_NO_THROW(o.validate(2));  // on the CPU, auto is Gloo
}

}  // namespace
}  // namespace k2f::train
