// End-to-end tests of `k2forge data synth-think` and `k2forge rl` on a small random model: the
// synthetic conversations build into a chat store, an RL run writes its metrics (with the
// trainer's recomputed log-probs matching the sampler's), eval.json and a checkpoint that
// `rl --eval-only` reads back, and bad [rl] input fails with the key named.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "base/json_io.h"
#include "e2e/e2e_paths.h"
#include "test_util.h"

namespace k2f {
namespace {

namespace fs = std::filesystem;
using testing::kBinary;
using testing::kSource;
using testing::run_command;
using testing::ScratchDir;

// A random tiny model with the embedded tokenizer's vocabulary (4352), built once.
const std::string& tiny_model() {
  static ScratchDir dir("rl-model");
  static const std::string path = [] {
    const std::string out = dir / "hf";
    const auto r = run_command(kBinary + " init --recipe " + kSource + "/recipes/tiny_think_sft.toml" +
                               " --set model.hidden_size=64 --set model.intermediate_size=128 --set model.num_hidden_layers=2" +
                               " --set model.moe_intermediate_size=32 --set model.q_lora_rank=32 --set model.kv_lora_rank=32" +
                               " --format hf-fp32 --out " + out);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return out;
  }();
  return path;
}

std::string rl_command(const std::string& run_dir, const std::string& extra = "") {
  return kBinary + " rl --recipe " + kSource + "/recipes/tiny_think_rl.toml --quiet --set train.init_from=" + tiny_model() +
         " --set train.run_dir=" + run_dir + " --set rl.tokenizer=" + kSource + "/assets/tokenizer" +
         " --set train.steps=2 --set rl.prompts_per_step=2 --set rl.samples_per_prompt=2" +
         " --set rl.max_response_tokens=10 --set rl.eval_problems=3 --set rl.max_tool_calls=1 " + extra;
}

TEST(RlCli, SynthThinkBuildsIntoAChatStore) {
  ScratchDir dir("rl-synth");
  auto r = run_command(kBinary + " data synth-think --out " + (dir / "t.jsonl") + " --count 20 --seed 3 --json", false);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Json report = Json::parse(r.output);
  EXPECT_EQ(report["conversations"], 20);
  r = run_command(kBinary + " data build --input " + (dir / "t.jsonl") + " --tokenizer " + kSource +
                  "/assets/tokenizer --out " + (dir / "t.h5") + " --kind chat --no-progress --json", false);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir / "t.h5"));
  r = run_command(kBinary + " data synth-think --out " + (dir / "u.jsonl") + " --tool-fraction 2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("--tool-fraction (2) must be in [0, 1]"), std::string::npos) << r.output;
}

TEST(RlCli, RunWritesMetricsEvalAndACheckpoint) {
  ScratchDir dir("rl-run");
  const std::string run = dir / "run";
  auto r = run_command(rl_command(run, "--set rl.objective=grpo --set rl.kl_coef=0.1"), false);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Json summary = Json::parse(r.output);
  EXPECT_EQ(summary["steps"], 2);
  EXPECT_EQ(summary["heldout_before"]["problems"], 3);
  EXPECT_TRUE(summary["heldout_after"].contains("accuracy"));
  std::ifstream metrics(run + "/metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(metrics, line)) {
    const Json m = Json::parse(line);
    for (const char* key : {"reward_mean", "reward_std", "accuracy", "response_length", "tool_calls_per_episode",
                            "truncation_rate", "kl", "temperature"})
      EXPECT_TRUE(m.contains(key)) << key;
    EXPECT_LT(m["logprob_mismatch"].get<double>(), 1e-4);  // trainer recomputation == sampler (fp32)
    EXPECT_LE(m["response_length"].get<double>(), 10.0);
    ++lines;
  }
  EXPECT_EQ(lines, 2);
  EXPECT_TRUE(fs::exists(run + "/eval.json"));
  EXPECT_TRUE(fs::exists(run + "/latest"));
  EXPECT_TRUE(fs::exists(run + "/recipe.resolved.toml"));

  r = run_command(rl_command(dir / "eval", "--eval-only --model " + run), false);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Json::parse(r.output)["heldout"]["problems"], 3);

  r = run_command(rl_command(run));  // the run dir holds a checkpoint: no silent overwrite
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("does not resume"), std::string::npos) << r.output;
}

TEST(RlCli, BadRecipesNameTheKey) {
  ScratchDir dir("rl-bad");
  auto r = run_command(rl_command(dir / "a", "--set rl.samples_per_promt=3"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("unknown key \"samples_per_promt\" in section [rl]"), std::string::npos) << r.output;
  r = run_command(rl_command(dir / "b", "--set rl.samples_per_prompt=1"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("rl.samples_per_prompt (1) must be at least 2"), std::string::npos) << r.output;
  r = run_command(rl_command(dir / "c", "--set train.init_from=" + (dir / "missing")));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("no such directory"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace k2f
