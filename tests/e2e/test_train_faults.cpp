// Faults of a real `k2forge train` process (train/stop_signals.cpp, train/checkpoint.cpp, the
// trainer's step checks): SIGTERM stops after the step with a checkpoint and exit 0 and the rerun
// continues exactly; a second signal exits at once and the last checkpoint still resumes; a
// checkpoint that cannot be written (file-size limit, permissions) leaves the previous one intact
// and says so.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include <unistd.h>

#include "base/json_io.h"
#include "e2e/e2e_paths.h"
#include "test_util.h"

namespace k2f {
namespace {

namespace fs = std::filesystem;
using testing::kBinary;
using testing::corpus_store;
using testing::kSource;
using testing::run_command;
using testing::ScratchDir;
using testing::spawn_command;
using testing::wait_for_exit;
using testing::wait_for_logged_steps;

// tiny_pretrain on the held-out corpus with AdamW, `steps` steps of `seq_len` tokens x 4 sequences.
std::string train_command(const ScratchDir& dir, const std::string& store, const std::string& run, int steps,
                          int seq_len, int checkpoint_interval) {
  // One intra-op thread: other tests share the cores while these runs are signalled.
  return "env OMP_NUM_THREADS=1 " + kBinary + " train --recipe " + kSource +
         "/recipes/tiny_pretrain.toml --set train.run_dir=" + (dir / run) +
         " --set data.paths=" + store + " --set data.tokenizer=" + kSource + "/assets/tokenizer" +
         " --set train.steps=" + std::to_string(steps) +
         " --set schedule.warmup_steps=2 --set schedule.decay_steps=2 --set checkpoint.interval=" +
         std::to_string(checkpoint_interval) + " --set train.global_batch_size=4 --set train.micro_batch_size=2" +
         " --set train.seq_len=" + std::to_string(seq_len) + " --set log.peak_tflops=1 --set log.tensorboard=false" +
         " --set optim.name=adamw";  // AdamW: the fastest steps; what is tested is the same for MuonClip
}

std::vector<double> logged_losses(const std::string& run_dir) {
  std::vector<double> values;
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) values.push_back(Json::parse(line)["loss"].get<double>());
  return values;
}

std::string latest(const std::string& run_dir) {
  return fs::exists(run_dir + "/latest") ? read_text_file(run_dir + "/latest") : "";
}

TEST(TrainFaults, SigtermStopsAfterTheStepWithACheckpointAndTheRerunContinuesExactly) {
  ScratchDir dir("train-faults");
  const auto store = corpus_store(dir);
  constexpr int kSteps = 16;
  auto r = run_command(train_command(dir, store, "straight", kSteps, 32, 1000));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto straight = logged_losses(dir / "straight");
  ASSERT_EQ(straight.size(), static_cast<size_t>(kSteps));

  const std::string command = train_command(dir, store, "stopped", kSteps, 32, 1000);
  const pid_t pid = spawn_command(command, dir / "stopped.log");
  ASSERT_TRUE(wait_for_logged_steps(dir / "stopped", 3));
  ::kill(pid, SIGTERM);
  EXPECT_EQ(wait_for_exit(pid, 120), 0) << read_text_file(dir / "stopped.log");
  const std::string stopped_at = latest(dir / "stopped");
  ASSERT_FALSE(stopped_at.empty()) << read_text_file(dir / "stopped.log");
  const int step = std::stoi(stopped_at.substr(5));
  EXPECT_GE(step, 3);
  EXPECT_LT(step, kSteps) << "the signal arrived after the run ended";
  EXPECT_NE(read_text_file(dir / "stopped.log").find("(SIGTERM), checkpoint written"), std::string::npos);

  r = run_command(command);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
  EXPECT_EQ(logged_losses(dir / "stopped"), straight);  // every step's loss, bitwise
}

TEST(TrainFaults, SecondSignalExitsAtOnceAndTheLastCheckpointStillResumes) {
  ScratchDir dir("train-faults");
  const auto store = corpus_store(dir);
  const std::string command = train_command(dir, store, "run", 8, 128, 2);  // slower steps: room between signals
  const pid_t pid = spawn_command(command, dir / "run.log");
  ASSERT_TRUE(wait_for_logged_steps(dir / "run", 3));
  ::kill(pid, SIGINT);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the first is delivered before the second
  ::kill(pid, SIGINT);
  EXPECT_EQ(wait_for_exit(pid, 120), 128 + SIGINT) << read_text_file(dir / "run.log");
  ASSERT_FALSE(latest(dir / "run").empty());

  const auto r = run_command(command);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
  EXPECT_EQ(latest(dir / "run"), "step-000008\n");
}

TEST(TrainFaults, CheckpointThatCannotBeWrittenKeepsThePreviousOneAndSaysSo) {
  ScratchDir dir("train-faults");
  const auto store = corpus_store(dir);
  const std::string command = train_command(dir, store, "run", 6, 32, 2);
  auto r = run_command(command + " --stop-after 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_EQ(latest(dir / "run"), "step-000002\n");

  // Files may not grow past 64 KiB: the step-4 checkpoint (megabytes) cannot be written.
  r = run_command("sh -c 'ulimit -f 64; exec " + command + "'");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  for (const std::string fragment : {"checkpoint step-000004", "could not be written", "write failed",
                                     "the previous checkpoint step-000002 is intact"}) {
    EXPECT_NE(r.output.find(fragment), std::string::npos) << "missing \"" << fragment << "\" in " << r.output;
  }
  EXPECT_EQ(latest(dir / "run"), "step-000002\n");
  for (const auto& entry : fs::directory_iterator(dir / "run")) {
    EXPECT_EQ(entry.path().filename().string().find(".step-"), std::string::npos) << "left behind: " << entry.path();
  }
  EXPECT_FALSE(fs::exists(dir / "run/step-000004"));

  r = run_command(command);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
  EXPECT_EQ(latest(dir / "run"), "step-000006\n");
}

// The same with the run directory made read-only: writes are refused by permissions. Root passes
// permission checks through CAP_DAC_OVERRIDE, so as root the run drops it (setpriv, util-linux).
// Read-only from the start, the run stops before training, naming the file; made read-only mid-run
// (17 steps before the next checkpoint falls due), the checkpoint write fails and the previous one
// is intact.
TEST(TrainFaults, CheckpointRefusedByPermissionsKeepsThePreviousOneAndSaysSo) {
  const bool root = ::geteuid() == 0;
  if (root && run_command("command -v setpriv").exit_code != 0) GTEST_SKIP() << "running as root without setpriv";
  ScratchDir dir("train-faults");
  const auto store = corpus_store(dir);
  const std::string command = train_command(dir, store, "run", 40, 32, 20);
  const std::string unprivileged = root ? "setpriv --bounding-set -dac_override,-dac_read_search " : "";
  auto r = run_command(command + " --stop-after 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_EQ(latest(dir / "run"), "step-000002\n");
  const fs::perms read_only = fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                              fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec;

  fs::permissions(dir / "run", read_only);
  r = run_command(unprivileged + command);
  fs::permissions(dir / "run", fs::perms::owner_all, fs::perm_options::add);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("recipe.resolved.toml"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Permission denied"), std::string::npos) << r.output;
  EXPECT_EQ(latest(dir / "run"), "step-000002\n");

  const pid_t pid = spawn_command(unprivileged + command, dir / "run.log");
  ASSERT_TRUE(wait_for_logged_steps(dir / "run", 3));  // step 3 of this invocation's 40
  fs::permissions(dir / "run", read_only);
  const int exit_code = wait_for_exit(pid, 300);
  fs::permissions(dir / "run", fs::perms::owner_all, fs::perm_options::add);
  const std::string log = read_text_file(dir / "run.log");
  EXPECT_EQ(exit_code, 1) << log;
  for (const std::string fragment : {"checkpoint step-000020", "could not be written", "Permission denied",
                                     "the previous checkpoint step-000002 is intact"}) {
    EXPECT_NE(log.find(fragment), std::string::npos) << "missing \"" << fragment << "\" in " << log;
  }
  EXPECT_EQ(latest(dir / "run"), "step-000002\n");
  for (const auto& entry : fs::directory_iterator(dir / "run")) {
    EXPECT_EQ(entry.path().filename().string().find(".step-"), std::string::npos) << "left behind: " << entry.path();
  }

  r = run_command(command);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
  EXPECT_EQ(latest(dir / "run"), "step-000040\n");
}

}  // namespace
}  // namespace k2f
