// The experiment scripts that docs/ quotes (scripts/compare_optimizers.sh,
// scripts/qat_experiment.sh with and without --large), run end to end at a tiny size: a few
// steps of small batches and a short held-out text instead of their published settings. What is
// checked is that each runs, writes only under its K2F_RUNS_DIR, and prints the figures docs/
// reports (one line per run and the best per optimizer; every held-out NLL of the QAT comparison
// and the gaps computed from them), not the figures' values, which need the full runs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

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

// Small batches of short sequences: a step takes a fraction of a second.
const std::string kSmallBatches = "train.seq_len=32 train.global_batch_size=2 train.micro_batch_size=2";

// `script` with its environment: the binary under test, every output under `runs`.
std::string script_command(const std::string& env, const fs::path& runs, const std::string& script) {
  const std::string build_dir = fs::path(kBinary).parent_path().parent_path();
  return "env K2F_BUILD_DIR=" + build_dir + " K2F_RUNS_DIR=" + runs.string() + " " + env + " " + kSource +
         "/scripts/" + script;
}

TEST(ExperimentScripts, CompareOptimizersPrintsEveryRunAndTheBestOfEachOptimizer) {
  ScratchDir dir("compare-optimizers");
  const auto r = run_command(script_command("K2F_COMPARE_SET=\"" + kSmallBatches + "\"", dir.str(),
                                            "compare_optimizers.sh 5"),
                             /*with_stderr=*/false);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::regex run_line(R"(^(muonclip|adamw) +lr ([0-9.e-]+) +final loss ([0-9]+\.[0-9]{4})$)");
  std::map<std::string, std::vector<double>> losses;
  std::vector<std::string> best;
  bool after_best = false;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) {
    if (line == "best per optimizer:") {
      after_best = true;
      continue;
    }
    std::smatch m;
    ASSERT_TRUE(std::regex_match(line, m, run_line)) << line;
    if (after_best) {
      best.push_back(m[1].str() + " " + m[3].str());
    } else {
      const double loss = std::stod(m[3].str());
      EXPECT_TRUE(std::isfinite(loss) && loss > 0.0 && loss < 20.0) << line;
      losses[m[1].str()].push_back(loss);
      // Each run's losses are the 5 steps asked for, in its own directory under K2F_RUNS_DIR.
      const fs::path metrics = dir / ("compare_optimizers/" + m[1].str() + "-" + m[2].str() + "/metrics.jsonl");
      std::ifstream in(metrics);
      int steps = 0;
      for (std::string row; std::getline(in, row);) ++steps;
      EXPECT_EQ(steps, 5) << metrics;
    }
  }
  ASSERT_EQ(losses["muonclip"].size(), 3u) << r.output;
  ASSERT_EQ(losses["adamw"].size(), 3u) << r.output;
  ASSERT_EQ(best.size(), 2u) << r.output;
  for (const auto& line : best) {
    const std::string optimizer = line.substr(0, line.find(' '));
    const double lowest = *std::min_element(losses[optimizer].begin(), losses[optimizer].end());
    EXPECT_DOUBLE_EQ(std::stod(line.substr(line.find(' ') + 1)), lowest) << line;
  }
  EXPECT_TRUE(fs::exists(dir / "data/python_docs_train.h5"));
  EXPECT_TRUE(fs::exists(dir / "compare_optimizers.txt"));
}

// A start checkpoint for the QAT experiment: two steps of the tiny pretraining recipe.
std::string qat_start(const ScratchDir& dir) {
  const std::string store = testing::corpus_store(dir);
  std::string command = kBinary + " train --recipe " + kSource + "/recipes/tiny_pretrain.toml --set train.run_dir=" +
                        (dir / "start") + " --set data.paths=" + store + " --set data.tokenizer=" + kSource + "/assets/tokenizer" +
                        " --set train.steps=2" +
                        " --set checkpoint.interval=2 --set schedule.warmup_steps=1 --set schedule.decay_steps=1" +
                        " --set log.peak_tflops=1";
  std::istringstream overrides(kSmallBatches);
  for (std::string o; overrides >> o;) command += " --set " + o;
  const auto r = run_command(command);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return dir / "start/step-000002";
}

// The JSON object the QAT experiment prints last.
Json final_json(const std::string& output) {
  const size_t line = output.rfind("\n{");
  const size_t open = line == std::string::npos ? output.find('{') : line + 1;
  EXPECT_NE(open, std::string::npos) << output;
  return Json::parse(output.substr(open));
}

TEST(ExperimentScripts, QatExperimentReportsEveryHeldOutNllAndTheGapsFromThem) {
  ScratchDir dir("qat-experiment");
  const std::string start = qat_start(dir);
  const std::string heldout = dir / "heldout.jsonl";
  {
    std::ifstream in(kSource + "/assets/corpus/python_docs_heldout.jsonl");
    std::ofstream out(heldout);
    std::string line;
    for (int i = 0; i < 2 && std::getline(in, line); ++i) out << line << "\n";
  }
  const std::string env = "K2F_QAT_FROM=" + start + " K2F_QAT_STORE=" + (dir / "corpus.h5") +
                          " K2F_QAT_HELDOUT=" + heldout + " K2F_QAT_SET=\"" + kSmallBatches +
                          " train.steps=2 checkpoint.interval=2 schedule.warmup_steps=1 schedule.decay_steps=1\"";
  for (const std::string mode : {"", " --large"}) {
    const fs::path runs = dir / (mode.empty() ? "runs-plain" : "runs-large");
    const auto r = run_command(script_command(env, runs, "qat_experiment.sh" + mode), false);
    ASSERT_EQ(r.exit_code, 0) << mode << "\n" << r.output;
    const Json result = final_json(r.output);
    EXPECT_EQ(result["start"], start);
    EXPECT_EQ(result["group_size"], 32);
    // --large quantises every linear; the default keeps K2 Thinking's bf16 list.
    EXPECT_EQ(result["ignore"], mode.empty() ? "K2 Thinking's list (routed experts INT4)" : "re:^$") << mode;
    const Json& nll = result["heldout_nll"];
    ASSERT_EQ(nll.size(), 7u) << result.dump();
    for (const auto& item : nll.items()) {
      EXPECT_TRUE(item.value().get<double>() > 0.0 && item.value().get<double>() < 20.0) << item.key();
    }
    // The packed INT4 directory scores the same through the W4A16 kernel and dequantised.
    EXPECT_NEAR(nll["int4_after_qat"].get<double>(), nll["int4_after_qat_dequantized"].get<double>(), 1e-4);
    EXPECT_DOUBLE_EQ(result["rounding_gap"].get<double>(),
                     nll["int4_rounded_no_qat"].get<double>() - nll["bf16"].get<double>());
    EXPECT_DOUBLE_EQ(result["control_rounding_gap"].get<double>(),
                     nll["control_finetuned_without_qat_then_rounded"].get<double>() -
                         nll["control_finetuned_without_qat"].get<double>());
    EXPECT_TRUE(fs::exists(runs / "qat_experiment/int4-qat-true"));
    EXPECT_FALSE(fs::exists(runs / "quickstart")) << "trained a start it was not asked for";
  }
}

}  // namespace
}  // namespace k2f
