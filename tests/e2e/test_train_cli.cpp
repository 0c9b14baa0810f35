// End-to-end tests of `k2forge train`: a short run on the embedded corpus that resumes, exports and
// scores; and the recipe and data errors a user can make (exit code 1, message naming the value).
#include <gtest/gtest.h>

#include <filesystem>

#include "base/json_io.h"
#include "e2e/e2e_paths.h"
#include "test_util.h"

namespace k2f {
namespace {

namespace fs = std::filesystem;
using testing::run_command;
using testing::ScratchDir;

using testing::kBinary;
using testing::corpus_store;
using testing::kSource;
const std::string kRecipe = kSource + "/recipes/tiny_pretrain.toml";

std::string train_command(const ScratchDir& dir, const std::string& store, const std::string& extra) {
  return kBinary + " train --recipe " + kRecipe + " --set train.run_dir=" + (dir / "run") + " --set data.paths=" +
         store + " --set data.tokenizer=" + kSource + "/assets/tokenizer --set train.steps=6" +
         " --set schedule.warmup_steps=2 --set schedule.decay_steps=2 --set checkpoint.interval=2" +
         " --set train.global_batch_size=4 --set train.micro_batch_size=2 --set train.seq_len=32" +
         " --set log.peak_tflops=1 " + extra;
}

TEST(TrainCli, StopsResumesExportsAndScores) {
  ScratchDir dir("train-cli");
  const auto store = corpus_store(dir);
  auto r = run_command(train_command(dir, store, "--stop-after 3"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_text_file(dir / "run/latest"), "step-000003\n");
  r = run_command(train_command(dir, store, ""));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
  EXPECT_EQ(read_text_file(dir / "run/latest"), "step-000006\n");
  EXPECT_TRUE(fs::exists(dir / "run/recipe.resolved.toml"));
  r = run_command(kBinary + " export --checkpoint " + (dir / "run/step-000006") + " --out " + (dir / "hf"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  write_text_file_atomic(dir / "heldout.txt",
                         "The interpreter reads a line of input and executes it.\n\nA list is a mutable sequence.\n");
  r = run_command(kBinary + " score --model " + (dir / "hf") + " --text " + (dir / "heldout.txt") + " --tokenizer " +
                  kSource + "/assets/tokenizer --out " + (dir / "scores.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const double nll = read_json_file(dir / "scores.json")["nll_mean"].get<double>();
  EXPECT_GT(nll, 0.0);
  EXPECT_LT(nll, std::log(4352.0) + 1.0);
}

void expect_train_fails(const std::string& extra, std::initializer_list<std::string> fragments) {
  ScratchDir dir("train-cli");
  const auto r = run_command(train_command(dir, dir / "absent.h5", extra));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  for (const auto& f : fragments) EXPECT_NE(r.output.find(f), std::string::npos) << "missing \"" << f << "\" in " << r.output;
  EXPECT_FALSE(fs::exists(dir / "run/step-000001"));
}

// `train --check` validates a recipe and the layout it asks for (here dp 2 x ep 2, checked for the
// world it names without launching it), prints the layout and trains nothing; a layout that cannot
// be cut is an error naming the key.
TEST(TrainCli, CheckValidatesALayoutAndPrintsItWithoutTraining) {
  ScratchDir dir("train-check");
  const std::string command = kBinary + " train --recipe " + kSource + "/recipes/tiny_moe_ep2.toml --set train.run_dir=" +
                              (dir / "run") + " --check";
  auto r = run_command(command);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("recipe ok"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("on each of 2 ranks (dp 2, ep 2"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "run/metrics.jsonl"));
  EXPECT_FALSE(fs::exists(dir / "run/latest"));
  r = run_command(command + " --set parallel.ep=3");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("parallel.ep (3)"), std::string::npos) << r.output;
}

TEST(TrainCliBadRecipe, UnknownOptimizer) {
  expect_train_fails("--set optim.name=sgd", {"optim.name (\"sgd\") must be \"muonclip\" or \"adamw\""});
}

TEST(TrainCliBadRecipe, NegativeLearningRate) {
  expect_train_fails("--set optim.lr=-0.1", {"optim.lr (-0.1) must be positive"});
}

TEST(TrainCliBadRecipe, FewerStepsThanWarmup) {
  expect_train_fails("--set schedule.warmup_steps=10 --set schedule.decay_steps=0",
                     {"train.steps (6) must be >= schedule.warmup_steps (10)"});
}

TEST(TrainCliBadRecipe, BatchNotAMultipleOfMicroBatch) {
  expect_train_fails("--set train.global_batch_size=5",
                     {"train.global_batch_size (5) must be a positive multiple of train.micro_batch_size (2)"});
}

TEST(TrainCliBadRecipe, PipelineParallelism) {
  expect_train_fails("--set parallel.pp=2", {"parallel.pp (2) must divide the number of ranks (1)"});
}

TEST(TrainCliBadRecipe, LayoutForMoreRanksThanStarted) {
  expect_train_fails("--set parallel.dp=2",
                     {"parallel.pp (1) x parallel.dp (2) = 2 must equal the number of ranks (1)"});
}

TEST(TrainCliBadRecipe, RouterDtype) {
  expect_train_fails("--set train.router_dtype=bf16", {"train.router_dtype (\"bf16\") must be \"fp32\" or \"fp64\""});
}

TEST(TrainCliBadData, StoreOfAnotherTokenizer) {
  ScratchDir dir("train-cli");
  auto r = run_command(kBinary + " tokenizer train --input " + kSource +
                       "/assets/corpus/python_docs_heldout.jsonl --vocab-size 512 --out " + (dir / "other-tokenizer"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_command(kBinary + " data build --input " + kSource + "/assets/corpus/python_docs_heldout.jsonl" +
                  " --tokenizer " + (dir / "other-tokenizer") + " --out " + (dir / "other.h5") + " --kind text");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_command(train_command(dir, dir / "other.h5", ""));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("other.h5"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("made with tokenizer"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "run/step-000001"));
}

}  // namespace
}  // namespace k2f
