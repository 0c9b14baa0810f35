// End-to-end tests of `k2forge plan` and the plan check of `k2forge train`: the K2 recipe's table
// and JSON, the exit code when a layout does not fit, unknown [cluster] keys, recipes without a
// cluster, train's refusal with its override, and the LoRA plan of K2 Thinking on one node.
#include <gtest/gtest.h>

#include "base/json_io.h"
#include "e2e/e2e_paths.h"
#include "test_util.h"

namespace k2f {
namespace {

using testing::kBinary;
using testing::kSource;
using testing::run_command;

const std::string kK2 = " --recipe " + kSource + "/recipes/kimi_k2_pretrain.toml";
const std::string kTiny = " --recipe " + kSource + "/recipes/tiny.toml";

TEST(PlanCli, KimiK2RecipePrintsTheTable) {
  const auto r = run_command(kBinary + " plan" + kK2);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* line : {"2048 GPUs = pp 16 x dp 128", "model-parallel group 256 GPUs", "master weights (ZeRO-1)",
                           "Muon momentum", "in flight)", "fits", "EP all-to-all", "step time",
                           "GPU-hours per trillion tokens", "MFU"}) {
    EXPECT_NE(r.output.find(line), std::string::npos) << "no \"" << line << "\" in\n" << r.output;
  }
  std::cout << r.output;
}

TEST(PlanCli, JsonCarriesTheSameFigures) {
  const auto r = run_command(kBinary + " plan --json" + kK2, /*with_stderr=*/false);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Json plan = Json::parse(r.output);
  EXPECT_EQ(plan["layout"]["model_parallel_gpus"], 256);
  EXPECT_EQ(plan["fits"], true);
  EXPECT_GT(plan["time"]["step_s"].get<double>(), 0);
  EXPECT_EQ(plan["stages"].size(), 16u);
  EXPECT_GT(plan["stages"][0]["master_weights_bytes"].get<double>(), 0);
}

TEST(PlanCli, ExitsOneWhenTheLayoutDoesNotFit) {
  const auto r = run_command(kBinary + " plan" + kK2 + " --set train.recompute=false");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("DOES NOT FIT"), std::string::npos) << r.output;
}

TEST(PlanCli, UnknownClusterKeyIsAnErrorNamingKeyAndSection) {
  const auto r = run_command(kBinary + " plan" + kK2 + " --set cluster.memory=80");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("unknown key \"memory\" in section [cluster]"), std::string::npos) << r.output;
}

TEST(PlanCli, RecipeWithoutClusterHasMemoryButNoTime) {
  const auto r = run_command(kBinary + " plan" + kTiny);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("no [cluster] in the recipe"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("= total"), std::string::npos) << r.output;
}

TEST(PlanCli, TrainRefusesALayoutThatDoesNotFitUnlessTold) {
  const std::string tiny_on_small_gpu =
      kTiny + " --set cluster.preset=h100 --set cluster.gpus_per_node=1 --set cluster.memory_gib=0.0001 --check";
  const auto refused = run_command(kBinary + " train" + tiny_on_small_gpu);
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  for (const char* part : {"the plan does not fit", "cluster.memory_gib is 0.0001", "--ignore-plan"})
    EXPECT_NE(refused.output.find(part), std::string::npos) << refused.output;
  const auto forced = run_command(kBinary + " train" + tiny_on_small_gpu + " --ignore-plan");
  EXPECT_EQ(forced.exit_code, 0) << forced.output;
  EXPECT_NE(forced.output.find("recipe ok"), std::string::npos) << forced.output;
  // Without a cluster, train behaves as before.
  const auto plain = run_command(kBinary + " train" + kTiny + " --check");
  EXPECT_EQ(plain.exit_code, 0) << plain.output;
}

TEST(PlanCli, KimiK2ThinkingLoraFitsEightH200sAndNotEightH100s) {
  const std::string lora = " plan --recipe " + kSource + "/recipes/k2_thinking_lora.toml";
  const auto h200 = run_command(kBinary + lora);
  ASSERT_EQ(h200.exit_code, 0) << h200.output;
  for (const char* part : {"LoRA adapters", "experts INT4", "r 16", "fits"})
    EXPECT_NE(h200.output.find(part), std::string::npos) << "no \"" << part << "\" in\n" << h200.output;
  const auto h100 = run_command(kBinary + lora + " --set cluster.preset=h100");
  EXPECT_EQ(h100.exit_code, 1) << h100.output;
  EXPECT_NE(h100.output.find("DOES NOT FIT"), std::string::npos) << h100.output;
}

}  // namespace
}  // namespace k2f
