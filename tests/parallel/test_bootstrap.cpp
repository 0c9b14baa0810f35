// parallel/bootstrap.cpp: launcher detection from injected environments (no processes), its
// error messages, option validation, and a one-process world (in-memory store, Gloo of size 1).
#include <gtest/gtest.h>

#include "base/device.h"
#include "parallel/bootstrap.h"
#include "test_util.h"
#include "tests/parallel/collective_checks.h"

namespace k2f::parallel {
namespace {

using testing::expect_error;

LaunchEnv detect(std::map<std::string, std::string> values) { return detect_launch_env(env_from_map(std::move(values))); }

TEST(LaunchEnv, NothingSetIsOneProcessOnThisHost) {
  const auto env = detect({});
  EXPECT_EQ(env.launcher, "single");
  EXPECT_EQ(env.rank, 0);
  EXPECT_EQ(env.world_size, 1);
  EXPECT_EQ(env.local_size, 1);
  EXPECT_EQ(env.master_addr, "127.0.0.1");
  EXPECT_FALSE(env.multi_host());
  EXPECT_EQ(env.master_port, default_master_port(""));
  EXPECT_GE(env.master_port, 29500);
  EXPECT_LT(env.master_port, 32500);
}

TEST(LaunchEnv, OpenMpi) {
  const auto env = detect({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "8"},
                           {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                           {"OMPI_MCA_ess_base_jobid", "1632632833"}, {"MASTER_ADDR", "node0"}});
  EXPECT_EQ(env.launcher, "openmpi");
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.world_size, 8);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.local_size, 2);
  EXPECT_TRUE(env.multi_host());
  EXPECT_EQ(env.master_addr, "node0");
  EXPECT_EQ(env.job_id, "1632632833");
  EXPECT_EQ(env.master_port, default_master_port("1632632833"));
}

TEST(LaunchEnv, DefaultPortIsDeterministicPerJobAndDiffersBetweenJobs) {
  EXPECT_EQ(default_master_port("1632632833"), default_master_port("1632632833"));
  EXPECT_NE(default_master_port("1632632833"), default_master_port("1632698369"));
  for (const std::string job : {"", "1", "12345.0", "abc"}) {
    EXPECT_GE(default_master_port(job), 29500);
    EXPECT_LT(default_master_port(job), 32500);
  }
}

TEST(LaunchEnv, MpichPmi) {
  const auto env = detect({{"PMI_RANK", "2"}, {"PMI_SIZE", "4"}, {"MPI_LOCALRANKID", "2"}, {"MPI_LOCALNRANKS", "4"}});
  EXPECT_EQ(env.launcher, "mpich");
  EXPECT_EQ(env.rank, 2);
  EXPECT_EQ(env.world_size, 4);
  EXPECT_EQ(env.local_rank, 2);
  EXPECT_EQ(env.local_size, 4);
  EXPECT_FALSE(env.multi_host());
}

TEST(LaunchEnv, TorchrunWithMasterAddressAndPort) {
  const auto env = detect({{"RANK", "5"}, {"WORLD_SIZE", "16"}, {"LOCAL_RANK", "5"}, {"LOCAL_WORLD_SIZE", "8"},
                           {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "23456"}});
  EXPECT_EQ(env.launcher, "torchrun");
  EXPECT_EQ(env.rank, 5);
  EXPECT_EQ(env.world_size, 16);
  EXPECT_EQ(env.local_rank, 5);
  EXPECT_EQ(env.local_size, 8);
  EXPECT_EQ(env.master_addr, "10.0.0.1");
  EXPECT_TRUE(env.master_addr_set);
  EXPECT_EQ(env.master_port, 23456);
}

TEST(LaunchEnv, OpenMpiWinsOverSlurmWhenBothAreSet) {
  const auto env = detect({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"SLURM_PROCID", "0"},
                           {"SLURM_NTASKS", "1"}});
  EXPECT_EQ(env.launcher, "openmpi");
  EXPECT_EQ(env.rank, 1);
  EXPECT_EQ(env.local_size, 2);  // no local variables: all ranks on this host
}

TEST(LaunchEnv, SlurmTasksPerNodeList) {
  const auto env = detect({{"SLURM_PROCID", "6"}, {"SLURM_NTASKS", "7"}, {"SLURM_LOCALID", "0"},
                           {"SLURM_TASKS_PER_NODE", "2(x3),1"}, {"SLURM_NODEID", "3"}, {"SLURM_JOB_ID", "991"},
                           {"SLURM_STEP_ID", "0"}});
  EXPECT_EQ(env.launcher, "slurm");
  EXPECT_EQ(env.rank, 6);
  EXPECT_EQ(env.world_size, 7);
  EXPECT_EQ(env.local_rank, 0);
  EXPECT_EQ(env.local_size, 1);
  EXPECT_EQ(env.job_id, "991.0");
  const auto second = detect({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "7"}, {"SLURM_LOCALID", "1"},
                              {"SLURM_TASKS_PER_NODE", "2(x3),1"}, {"SLURM_NODEID", "1"}});
  EXPECT_EQ(second.local_size, 2);
  const auto fixed = detect({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "3"},
                             {"SLURM_NTASKS_PER_NODE", "4"}, {"SLURM_TASKS_PER_NODE", "garbage"}});
  EXPECT_EQ(fixed.local_size, 4);
}

TEST(LaunchEnv, ErrorsNameTheVariableAndValue) {
  expect_error([] { detect({{"OMPI_COMM_WORLD_RANK", "4"}, {"OMPI_COMM_WORLD_SIZE", "4"}}); },
               {"OMPI_COMM_WORLD_RANK (4)", "OMPI_COMM_WORLD_SIZE (4)"});
  expect_error([] { detect({{"RANK", "x"}, {"WORLD_SIZE", "2"}}); }, {"RANK (\"x\") must be an integer"});
  expect_error([] { detect({{"RANK", "1"}, {"WORLD_SIZE", "2.5"}}); }, {"WORLD_SIZE (\"2.5\") must be an integer"});
  expect_error([] { detect({{"RANK", "1"}}); }, {"RANK and WORLD_SIZE must be set together"});
  expect_error([] { detect({{"PMI_RANK", "0"}}); }, {"PMI_SIZE must be set when PMI_RANK is"});
  expect_error([] { detect({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "0"}}); },
               {"OMPI_COMM_WORLD_SIZE (0) must be >= 1"});
  expect_error([] { detect({{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "2"}, {"LOCAL_WORLD_SIZE", "2"}}); },
               {"LOCAL_RANK (2)", "local size 2"});
  expect_error([] { detect({{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_WORLD_SIZE", "8"}}); },
               {"LOCAL_WORLD_SIZE (8)", "WORLD_SIZE (4)"});
  expect_error([] { detect({{"MASTER_PORT", "70000"}}); }, {"MASTER_PORT (70000) must be in [1, 65535]"});
  expect_error([] { detect({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_TASKS_PER_NODE", "2(3)"}}); },
               {"SLURM_TASKS_PER_NODE (\"2(3)\")", "2(x3),1"});
  expect_error([] { detect({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "3"}, {"SLURM_TASKS_PER_NODE", "2,1"},
                            {"SLURM_NODEID", "2"}}); },
               {"SLURM_NODEID (2)", "\"2,1\""});
}

TEST(DistOptions, ValidateQuotesKeysAndValues) {
  DistOptions o;
  o.timeout_s = 0;
  expect_error([&] { o.validate(); }, {"parallel.timeout_s (0) must be > 0"});
  o = DistOptions{};
  o.backend = "mpi";
  expect_error([&] { o.validate(); }, {"parallel.backend (\"mpi\")", "auto, gloo, nccl"});
  o = DistOptions{};
  o.backend = "nccl";
  expect_error([&] { o.validate(); }, {"parallel.backend \"nccl\" needs parallel.device \"cuda\""});
}

TEST(InitDistributed, SeveralHostsNeedMasterAddr) {
  LaunchEnv env;
  env.launcher = "openmpi";
  env.rank = 1;
  env.world_size = 4;
  env.local_rank = 1;
  env.local_size = 2;
  DistOptions o;
  o.configure_threads = false;
  expect_error([&] { init_distributed(env, o); }, {"MASTER_ADDR must be set", "4 ranks span several hosts"});
}

TEST(InitDistributed, OneProcessWorldRunsCollectivesAndAgreement) {
  DistOptions o;
  o.configure_threads = false;
  auto ctx = init_distributed(detect({}), o);
  EXPECT_EQ(ctx.backend, "gloo");
  ASSERT_TRUE(ctx.world.defined());
  EXPECT_EQ(ctx.world->getSize(), 1);
  auto t = torch::ones({3});
  all_reduce_sum(ctx.world, t);
  EXPECT_TRUE(torch::equal(t, torch::ones({3})));
  EXPECT_NO_THROW(ctx.check_on_all_ranks([] {}));
  expect_error([&] { ctx.check_on_all_ranks([] { fail("parallel.ep (3) must divide parallel.dp (4)"); }); },
               {"parallel.ep (3) must divide parallel.dp (4)"});
  expect_error([&] { ctx.new_group({0, 0}, "twice"); }, {"process group \"twice\"", "ascending"});
  expect_error([&] { ctx.new_group({0, 1}, "too_big"); }, {"process group \"too_big\"", "in [0, 1)"});
}

TEST(InitDistributed, CollectivesOnGlooKeepHostTensorsOnTheHost) {
  DistOptions o;
  o.configure_threads = false;
  auto ctx = init_distributed(detect({}), o);
  EXPECT_EQ(group_device(ctx.world), c10::Device(c10::kCPU));
  testing::expect_collectives_keep_values_and_device(ctx.world, c10::Device(c10::kCPU));
  testing::expect_collectives_keep_values_and_device(ctx.new_group({0}, "mesh"), c10::Device(c10::kCPU));
}

TEST(InitDistributed, TheWorldGroupIsGlooWhateverTheMeshBackend) {
  if (built_with_cuda()) GTEST_SKIP() << "a CUDA build has NCCL: Cuda.NcclGroupsTakeHostAndGpuTensors covers it";
  DistOptions o;
  o.configure_threads = false;
  auto ctx = init_distributed(detect({}), o);
  EXPECT_EQ(ctx.world->getBackendName(), "gloo");
  expect_error([&] { ctx.use_backend("mpi"); }, {"backend \"mpi\"", "expected gloo or nccl"});
  expect_error([&] { ctx.use_backend("nccl"); }, {"parallel.backend \"nccl\"", "CUDA LibTorch", "Gloo only"});
  EXPECT_EQ(ctx.backend, "gloo");  // unchanged by the refusals
  o.device = "cuda";
  expect_error([&] { init_distributed(detect({}), o); }, {"parallel.backend \"nccl\"", "Gloo only"});
}

}  // namespace
}  // namespace k2f::parallel
