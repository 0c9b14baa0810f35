// `k2forge train` under mpirun equals one process (issue 5, acceptance 1, 3 and 5): each parallel
// recipe (data, expert and pipeline parallel, and all three) trains 20 steps in one process and
// under mpirun (same seed, same store built here from assets/corpus, fp32, router in fp64 so no
// top-k tie can flip); every step's loss agrees within 1e-5 relative and every parameter after
// step 1 within 1e-6. A checkpoint written by an expert- or pipeline-parallel run resumes under
// other layouts with the same losses, and a config error or a
// mid-run failure on one rank stops every rank with its message, within a timeout.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <iostream>
#include <sstream>

#include "base/json_io.h"
#include "e2e/e2e_paths.h"
#include "model/safetensors.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/model_loading.h"

namespace k2f {
namespace {

namespace fs = std::filesystem;
using testing::kBinary;
using testing::kSource;
using testing::run_command;
using testing::ScratchDir;

const std::string kMpirun = std::string(K2F_MPIRUN) + " --allow-run-as-root --oversubscribe -x OMP_NUM_THREADS=1";

// The corpus store and the runs, shared by the tests of this file (built once, removed at exit).
class TrainDist : public ::testing::Test {
 protected:
  static ScratchDir& dir() {
    static ScratchDir scratch("train-dist");
    return scratch;
  }
  static std::string store() {
    static const std::string path = [] {
      const std::string out = dir() / "corpus.h5";
      const auto r = run_command(kBinary + " data build --input " + kSource +
                                 "/assets/corpus/python_docs_heldout.jsonl --tokenizer " + kSource +
                                 "/assets/tokenizer --out " + out + " --kind text");
      EXPECT_EQ(r.exit_code, 0) << r.output;
      return out;
    }();
    return path;
  }

  // `k2forge train` of a recipe under `launcher` ("" or "mpirun -np N"), run dir `run`.
  static std::string train(const std::string& recipe, const std::string& launcher, const std::string& run,
                           const std::string& extra) {
    return launcher + " " + kBinary + " train --recipe " + kSource + "/recipes/" + recipe + ".toml --set train.run_dir=" +
           (dir() / run) + " --set data.paths=" + store() + " --set data.tokenizer=" + kSource +
           "/assets/tokenizer --set log.peak_tflops=1 --set checkpoint.keep=3 " + extra;
  }
  // One thread, as each rank has: with two, the one-process run sums some reductions in another
  // order, and by step 20 of the 4-layer recipe that alone moves the loss by 8e-5 (measured).
  static std::string single(const std::string& recipe, const std::string& run, const std::string& extra = "") {
    return train(recipe, "OMP_NUM_THREADS=1", run, "--set parallel.dp=1 --set parallel.ep=1 " + extra);
  }
  static std::string mpi(int ranks, const std::string& recipe, const std::string& run, const std::string& extra = "") {
    return train(recipe, "timeout 600 " + kMpirun + " -np " + std::to_string(ranks), run, extra);
  }

  // Trains a run to step 1 (checkpoint kept), then on to step 20 (checkpoints 10 and 20); returns
  // the first invocation's output.
  static std::string train_twenty(const std::string& command) {
    const auto first = run_command(command + " --stop-after 1");
    EXPECT_EQ(first.exit_code, 0) << command << "\n" << first.output;
    const auto rest = run_command(command);
    EXPECT_EQ(rest.exit_code, 0) << command << "\n" << rest.output;
    return first.output;
  }
};

// How often `fragment` occurs in `text`.
size_t count(const std::string& text, const std::string& fragment) {
  size_t n = 0;
  for (size_t at = text.find(fragment); at != std::string::npos; at = text.find(fragment, at + 1)) ++n;
  return n;
}

std::vector<double> losses(const std::string& run_dir) {
  std::vector<double> values;
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    const auto m = Json::parse(line);
    EXPECT_EQ(m["step"].get<size_t>(), values.size() + 1) << run_dir;
    values.push_back(m["loss"].get<double>());
  }
  return values;
}

// Largest relative difference of the losses of steps [first, last] (1-based).
double max_relative_difference(const std::vector<double>& a, const std::vector<double>& b, size_t first, size_t last) {
  double worst = 0;
  for (size_t step = first; step <= last; ++step) {
    worst = std::max(worst, std::abs(a.at(step - 1) - b.at(step - 1)) / std::abs(b.at(step - 1)));
  }
  return worst;
}

struct StepOneDifference {
  double parameters = 0;        // max |a - b| over every parameter except AdamW's embedding, lm_head and adapters
  double adamw_parameters = 0;  // over those
  double gradients = 0;         // max |g_a - g_b| / max |g| per tensor (Muon momentum, AdamW exp_avg)
};

// Same-named tensors of two step-1 checkpoints (model and optimizer files; same names required).
// After one step the optimizer state holds the gradient (Muon momentum = g, AdamW exp_avg =
// (1 - beta1) g), so gradients are compared too. AdamW's first update is lr * g / (|g| + eps): for
// the many lm_head/embedding elements with |g| near eps (1e-8) it multiplies the gradient's fp32
// rounding (about 1e-11 here, from another order of summation over ranks) by up to lr / eps
// (2.5e5), so those two tensors get 1e-5 instead of 1e-6 (measured values are printed); so do LoRA
// adapters, every one of which AdamW updates (B's first gradients are small where A x is).
// A step directory's tensors of one kind, joined from every rank's files through the index.
train::CheckpointTensors checkpoint_tensors(const std::string& step_dir, const std::string& kind) {
  return train::CheckpointTensors(step_dir, kind, read_json_file(step_dir + "/meta.json"));
}

StepOneDifference step_one_difference(const std::string& a_dir, const std::string& b_dir) {
  auto a = checkpoint_tensors(a_dir, "model"), b = checkpoint_tensors(b_dir, "model");
  auto a_opt = checkpoint_tensors(a_dir, "optimizer"), b_opt = checkpoint_tensors(b_dir, "optimizer");
  EXPECT_EQ(a.tensor_names(), b.tensor_names()) << a_dir << " vs " << b_dir;
  EXPECT_EQ(a_opt.tensor_names(), b_opt.tensor_names()) << a_dir << " vs " << b_dir;
  StepOneDifference out;
  for (const auto& name : a.tensor_names()) {
    if (!b.contains(name)) continue;
    const auto x = a.load(name).to(torch::kFloat64), y = b.load(name).to(torch::kFloat64);
    const double difference = (x - y).abs().max().item<double>();
    const bool adamw_amplified = name == "lm_head.weight" || name == "model.embed_tokens.weight" ||
                                 name.rfind("base_model.model.", 0) == 0;  // LoRA adapters train under AdamW
    auto& slot = adamw_amplified ? out.adamw_parameters : out.parameters;
    slot = std::max(slot, difference);
    for (const char* state : {".momentum", ".exp_avg"}) {
      if (!a_opt.contains(name + state)) continue;
      const auto g_a = a_opt.load(name + state).to(torch::kFloat64), g_b = b_opt.load(name + state).to(torch::kFloat64);
      const double scale = std::max(g_a.abs().max().item<double>(), 1e-30);
      out.gradients = std::max(out.gradients, (g_a - g_b).abs().max().item<double>() / scale);
    }
  }
  return out;
}

void expect_parity(const std::string& parallel_run, const std::string& single_run, const std::string& dir) {
  const auto parallel = losses(dir + "/" + parallel_run), serial = losses(dir + "/" + single_run);
  ASSERT_EQ(parallel.size(), 20u);
  ASSERT_EQ(serial.size(), 20u);
  const double loss_difference = max_relative_difference(parallel, serial, 1, 20);
  const auto step_one = step_one_difference(dir + "/" + parallel_run + "/step-000001", dir + "/" + single_run + "/step-000001");
  std::cout << parallel_run << ": loss " << serial.front() << " -> " << serial.back()
            << ", max relative loss difference " << loss_difference << "; after step 1: max parameter difference "
            << step_one.parameters << " (embedding and lm_head: " << step_one.adamw_parameters
            << "), max gradient difference relative to the tensor's largest " << step_one.gradients << "\n";
  EXPECT_LT(loss_difference, 1e-5);
  EXPECT_LT(step_one.parameters, 1e-6);
  EXPECT_LT(step_one.adamw_parameters, 1e-5);
  EXPECT_LT(step_one.gradients, 1e-5);
  EXPECT_LT(serial.back(), serial.front());
}

// A run dir holding only checkpoint `step` of `from` (as if the run had stopped there), with the
// metrics of the steps before it, so the resumed run's metrics.jsonl holds all 20 steps.
std::string copy_checkpoint(const ScratchDir& dir, const std::string& from, const std::string& to, int step) {
  char name[32];
  std::snprintf(name, sizeof(name), "step-%06d", step);
  fs::create_directories(dir / to);
  fs::copy(dir / (from + "/" + name), dir / (to + "/" + name), fs::copy_options::recursive);
  write_text_file_atomic(dir / (to + "/latest"), std::string(name) + "\n");
  fs::copy(dir / (from + "/metrics.jsonl"), dir / (to + "/metrics.jsonl"));
  return to;
}

// Steps 11..20 after resuming `resumed_run` at step 10 equal those of the uninterrupted `straight_run`.
void expect_same_continuation(const std::string& dir, const std::string& resumed_run, const std::string& straight_run) {
  const auto resumed = losses(dir + "/" + resumed_run), straight = losses(dir + "/" + straight_run);
  ASSERT_EQ(resumed.size(), 20u) << "metrics.jsonl of a resumed run continues from the checkpoint's step";
  const double difference = max_relative_difference(resumed, straight, 11, 20);
  std::cout << resumed_run << ": max relative loss difference to " << straight_run << " over steps 11..20 "
            << difference << "\n";
  EXPECT_LT(difference, 1e-5);
}

TEST_F(TrainDist, DataParallelTwoRanksEqualsOneProcess) {
  train_twenty(single("tiny_moe_dp2", "single"));
  train_twenty(mpi(2, "tiny_moe_dp2", "dp2"));
  expect_parity("dp2", "single", dir().str());
}

// Also acceptance 3: the expert-parallel checkpoint (every expert once, under its global name,
// as one process writes it) resumes in one process and continues with the same losses.
TEST_F(TrainDist, ExpertParallelTwoRanksEqualsOneProcessAndResumesInOne) {
  train_twenty(single("tiny_moe_ep2", "single"));
  train_twenty(mpi(2, "tiny_moe_ep2", "ep2"));
  expect_parity("ep2", "single", dir().str());
  EXPECT_TRUE(checkpoint_tensors(dir() / "ep2/step-000010", "model").contains("model.layers.2.mlp.experts.7.down_proj.weight"));
  EXPECT_EQ(read_json_file(dir() / "ep2/step-000010/meta.json")["layout"]["ep"].get<int>(), 2);

  const auto run = copy_checkpoint(dir(), "ep2", "ep2-to-single", 10);
  const auto r = run_command(single("tiny_moe_ep2", run));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
  expect_same_continuation(dir().str(), run, "ep2");
  expect_same_continuation(dir().str(), run, "single");
}

// Four ranks (dp 4, ep 2: two replicas of each expert half); its checkpoint resumes on two ranks
// with ep 2 (tiny_moe_dp4_ep2 and tiny_moe_ep2 differ only in [parallel]).
TEST_F(TrainDist, FourRanksDataAndExpertParallelEqualsOneProcessAndReshards) {
  train_twenty(single("tiny_moe_dp4_ep2", "single"));
  train_twenty(mpi(4, "tiny_moe_dp4_ep2", "dp4ep2"));
  expect_parity("dp4ep2", "single", dir().str());

  const auto run = copy_checkpoint(dir(), "dp4ep2", "dp4ep2-to-ep2", 10);
  const auto r = run_command(mpi(2, "tiny_moe_dp4_ep2", run, "--set parallel.dp=2"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_continuation(dir().str(), run, "dp4ep2");
}

// Pipeline parallelism (issue 5, acceptance 1): two stages, under 1F1B and under GPipe; a
// one-process checkpoint resumes on the two stages with the same losses.
TEST_F(TrainDist, PipelineTwoStagesEqualsOneProcessUnder1F1BAndGPipe) {
  train_twenty(single("tiny_moe_pp2", "pp-single", "--set parallel.pp=1"));
  train_twenty(mpi(2, "tiny_moe_pp2", "pp2"));
  expect_parity("pp2", "pp-single", dir().str());
  train_twenty(mpi(2, "tiny_moe_pp2", "pp2-gpipe", "--set parallel.schedule=gpipe"));
  expect_parity("pp2-gpipe", "pp-single", dir().str());
  const auto file = checkpoint_tensors(dir() / "pp2/step-000010", "model");
  EXPECT_TRUE(file.contains("model.embed_tokens.weight"));  // stage 0's
  EXPECT_TRUE(file.contains("lm_head.weight"));             // stage 1's
  EXPECT_TRUE(file.contains("model.layers.2.mlp.experts.7.down_proj.weight"));

  const auto run = copy_checkpoint(dir(), "pp-single", "single-to-pp2", 10);
  const auto r = run_command(mpi(2, "tiny_moe_pp2", run));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
  expect_same_continuation(dir().str(), run, "pp-single");
}

// Interleaved 1F1B: 4 layers in 4 chunks, two per stage (the embedding-only chunk included).
TEST_F(TrainDist, InterleavedPipelineEqualsOneProcess) {
  const std::string one_chunk = "--set parallel.pp=1 --set parallel.virtual_stages=1 --set parallel.schedule=1f1b";
  train_twenty(single("tiny_moe_pp2_vpp2", "vpp-single", one_chunk));
  train_twenty(mpi(2, "tiny_moe_pp2_vpp2", "pp2vpp2"));
  expect_parity("pp2vpp2", "vpp-single", dir().str());
}

// Acceptance 1 and 3 on four ranks (pp 2 x dp 2, ep 2 inside dp): equals one process; its
// checkpoint resumes in one process and under tiny_moe_ep2's layout with the same losses.
TEST_F(TrainDist, PipelineDataExpertFourRanksEqualsOneProcessAndReshards) {
  train_twenty(single("tiny_moe_pp2_dp2_ep2", "pde-single", "--set parallel.pp=1"));
  train_twenty(mpi(4, "tiny_moe_pp2_dp2_ep2", "pp2dp2ep2"));
  expect_parity("pp2dp2ep2", "pde-single", dir().str());
  EXPECT_EQ(read_json_file(dir() / "pp2dp2ep2/step-000010/meta.json")["layout"]["pp"].get<int>(), 2);

  const auto to_one = copy_checkpoint(dir(), "pp2dp2ep2", "pp2dp2ep2-to-single", 10);
  auto r = run_command(single("tiny_moe_pp2_dp2_ep2", to_one, "--set parallel.pp=1"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
  expect_same_continuation(dir().str(), to_one, "pp2dp2ep2");

  const auto to_ep2 = copy_checkpoint(dir(), "pp2dp2ep2", "pp2dp2ep2-to-ep2", 10);
  r = run_command(mpi(2, "tiny_moe_pp2_dp2_ep2", to_ep2, "--set parallel.pp=1"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_continuation(dir().str(), to_ep2, "pp2dp2ep2");
}

// LoRA on an INT4 base (issue 23) under pp 2 x dp 2 x ep 2 with ZeRO-1 equals one process: each
// rank reads only its stage's layers and its routed experts from the packed base, adapters on every
// Linear (routed experts included) train and sync over their groups; the checkpoint holds the
// whole model's adapters (and their optimizer state) as one process writes them, resumes in one
// process and back under the four ranks, and no byte of the base changes.
TEST_F(TrainDist, LoraOnAnInt4BaseUnderPipelineDataExpertAndZeroOneEqualsOneProcessAndReshards) {
  const std::string recipe = kSource + "/recipes/tiny_moe_pp2_dp2_ep2.toml";
  auto r = run_command(kBinary + " init --recipe " + recipe + " --set train.run_dir=" + (dir() / "lora-init") +
                       " --format hf-fp32 --out " + (dir() / "lora-base-fp32"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string base = dir() / "lora-base";
  r = run_command(kBinary + " export --checkpoint " + (dir() / "lora-base-fp32") + " --out " + base + " --format hf-int4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Json base_files = train::directory_checksums(base);
  const std::string lora = "--set train.init_from=" + base + " --set lora.rank=4 --set lora.alpha=8 --set lora.targets=Linear";
  train_twenty(single("tiny_moe_pp2_dp2_ep2", "lora-single", "--set parallel.pp=1 " + lora));
  const auto output = train_twenty(mpi(4, "tiny_moe_pp2_dp2_ep2", "lora-4", lora + " --set parallel.zero1=true"));
  EXPECT_NE(output.find("LoRA rank 4"), std::string::npos) << output;
  expect_parity("lora-4", "lora-single", dir().str());

  const auto adapters = checkpoint_tensors(dir() / "lora-4/step-000010", "model");
  for (const char* name : {"base_model.model.model.layers.0.self_attn.q_a_proj.lora_A.weight",   // stage 0
                           "base_model.model.model.layers.2.mlp.experts.7.down_proj.lora_B.weight",  // stage 1, ep rank 1
                           "base_model.model.model.layers.1.mlp.experts.0.gate_proj.lora_A.weight"})
    EXPECT_TRUE(adapters.contains(name)) << name;
  for (const auto& name : adapters.tensor_names()) EXPECT_EQ(name.rfind("base_model.model.", 0), 0u) << name;
  const auto modules = [&](const std::string& run) {
    auto list = read_json_file(dir() / (run + "/step-000010/meta.json"))["lora"]["modules"].get<std::vector<std::string>>();
    std::sort(list.begin(), list.end());
    return list;
  };
  EXPECT_EQ(modules("lora-4"), modules("lora-single"));

  const auto to_one = copy_checkpoint(dir(), "lora-4", "lora-4-to-single", 10);
  r = run_command(single("tiny_moe_pp2_dp2_ep2", to_one, "--set parallel.pp=1 " + lora));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
  expect_same_continuation(dir().str(), to_one, "lora-4");
  const auto to_four = copy_checkpoint(dir(), "lora-single", "lora-single-to-4", 10);
  r = run_command(mpi(4, "tiny_moe_pp2_dp2_ep2", to_four, lora + " --set parallel.zero1=true"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_continuation(dir().str(), to_four, "lora-single");
  EXPECT_EQ(train::directory_checksums(base), base_files);
}

// Sharded checkpoints (issue 21): under pp 2 x dp 2, ep 2 with ZeRO-1 every rank writes its own
// files (one replica of each replicated tensor, its own optimizer shards) and about a quarter
// of the bytes; meta.json's index names a file (and the rows) for every tensor.
TEST_F(TrainDist, EveryRankWritesItsOwnPartOfACheckpoint) {
  const auto output = run_command(mpi(4, "tiny_moe_pp2_dp2_ep2", "sharded", "--set parallel.zero1=true --set train.steps=10"));
  ASSERT_EQ(output.exit_code, 0) << output.output;
  const Json meta = read_json_file(dir() / "sharded/step-000010/meta.json");
  std::vector<double> bytes(4, 0.0);
  double total = 0;
  for (const auto& [file, record] : meta["files"].items()) {
    const int rank = std::stoi(file.substr(file.find("-rank") + 5, 5));
    bytes.at(static_cast<size_t>(rank)) += record["bytes"].get<double>();
    total += record["bytes"].get<double>();
  }
  std::cout << "sharded checkpoint bytes per rank:";
  for (const double b : bytes) std::cout << " " << static_cast<int64_t>(b);
  std::cout << " (total " << static_cast<int64_t>(total) << ")\n";
  for (const double b : bytes) {
    EXPECT_GT(b, 0.15 * total);
    EXPECT_LT(b, 0.35 * total);
  }
  int sliced = 0;
  for (const auto& [name, entry] : meta["index"]["optimizer"].items()) sliced += entry["pieces"].size() > 1 ? 1 : 0;
  EXPECT_GT(sliced, 0) << "ZeRO-1 row slices of AdamW state, one piece per dp rank";
}

// Issue 7: `k2forge rl` under mpirun splits each step's prompt groups and the held-out batches over
// the ranks (each episode seeded by its index in the step, generation batches of one group, so
// both runs sample the same episodes from the same weights) and sums their gradients. Step 1 starts from equal weights and
// must agree to rounding; later steps start from weights that differ by the rounding of another
// summation order, which a near-uniform random policy can turn into other sampled tokens, so they
// are only checked loosely (the PTX loss of the same sequences).
TEST_F(TrainDist, RlRolloutsSplitOverTwoRanksTrainAsOneProcess) {
  const std::string model = dir() / "rl-model";
  auto r = run_command(kBinary + " init --recipe " + kSource + "/recipes/tiny_think_sft.toml --set model.hidden_size=64" +
                       " --set model.intermediate_size=128 --set model.num_hidden_layers=2 --set model.moe_intermediate_size=32" +
                       " --set model.q_lora_rank=32 --set model.kv_lora_rank=32 --format hf-fp32 --out " + model);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string rl = kBinary + " rl --recipe " + kSource + "/recipes/tiny_think_rl.toml --quiet --set train.init_from=" +
                         model + " --set rl.tokenizer=" + kSource + "/assets/tokenizer --set train.steps=3" +
                         " --set rl.prompts_per_step=4 --set rl.samples_per_prompt=2 --set rl.max_response_tokens=12" +
                         " --set rl.eval_problems=4 --set rl.max_tool_calls=1 --set rl.kl_coef=0.1 --set rl.ptx_coef=1" +
                         " --set rl.ptx_data=" + store() + " --set rl.ptx_seq_len=32 --set optim.lr=0.01" +
                         " --set rl.rollout_batch_prompts=1 --set rl.eval_batch_size=2 --set train.run_dir=";
  r = run_command("OMP_NUM_THREADS=1 " + rl + (dir() / "rl-one"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_command("timeout 600 " + kMpirun + " -np 2 " + rl + (dir() / "rl-two"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(count(r.output, "\"heldout_before\""), 1u) << "rank 0 alone prints the summary: " << r.output;
  const auto metrics = [](const std::string& run_dir) {
    std::vector<Json> steps;
    std::ifstream in(run_dir + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);) steps.push_back(Json::parse(line));
    return steps;
  };
  const auto one = metrics(dir() / "rl-one"), two = metrics(dir() / "rl-two");
  ASSERT_EQ(one.size(), 3u);
  ASSERT_EQ(two.size(), 3u);
  for (const char* key : {"reward_mean", "loss", "grad_norm", "ptx_loss", "kl", "response_length", "trained_episodes"}) {
    const double a = one[0][key].get<double>(), b = two[0][key].get<double>();
    EXPECT_LE(std::abs(a - b), 1e-6 * std::max(1.0, std::abs(a))) << "step 1 " << key << ": " << a << " vs " << b;
  }
  EXPECT_GT(one[0]["grad_norm"].get<double>(), 0.0);  // the step trains (PTX and KL terms)
  // The held-out evaluation before RL (two batches of 2 problems, one per rank) equals one process's.
  const auto eval_one = read_json_file(dir() / "rl-one/eval.json"), eval_two = read_json_file(dir() / "rl-two/eval.json");
  for (const char* key : {"accuracy", "format_rate", "truncation_rate", "tool_calls_per_episode", "response_tokens"})
    EXPECT_NEAR(eval_one["before"][key].get<double>(), eval_two["before"][key].get<double>(), 1e-12) << key;
  EXPECT_EQ(eval_one["samples_before"], eval_two["samples_before"]);
  for (size_t step = 1; step < 3; ++step) {
    const double a = one[step]["ptx_loss"].get<double>(), b = two[step]["ptx_loss"].get<double>();
    EXPECT_LT(std::abs(a - b) / a, 1e-3) << "step " << step + 1;
  }
  std::cout << "rl dp2 vs one process, step 1: loss " << one[0]["loss"] << " / " << two[0]["loss"] << ", grad norm "
            << one[0]["grad_norm"] << " / " << two[0]["grad_norm"] << "; step 3 PTX loss " << one[2]["ptx_loss"] << " / "
            << two[2]["ptx_loss"] << "\n";
}

// "optimizer state bytes per rank: [a, b, ...]" from a run's output.
std::vector<int64_t> optimizer_bytes_per_rank(const std::string& output) {
  const std::string label = "optimizer state bytes per rank: [";
  const auto at = output.find(label);
  EXPECT_NE(at, std::string::npos) << output;
  std::vector<int64_t> bytes;
  if (at == std::string::npos) return bytes;
  std::istringstream list(output.substr(at + label.size(), output.find(']', at) - at - label.size()));
  for (std::string item; std::getline(list, item, ',');) bytes.push_back(std::stoll(item));
  return bytes;
}

// Acceptance 4: ZeRO-1 (dp 4, ep 2: dense state over 4 ranks, expert state over 2) trains as the
// unsharded run and one process do; every rank keeps about a quarter of the unsharded rank's
// optimizer state, and the ranks together exactly the one-process state. Its checkpoint holds the
// whole state (resumes in one process), and a one-process checkpoint resumes sharded.
TEST_F(TrainDist, ZeroOneEqualsUnshardedAndShardsOptimizerState) {
  const auto one = optimizer_bytes_per_rank(train_twenty(single("tiny_moe_dp4_ep2", "z-single")));
  const auto unsharded = optimizer_bytes_per_rank(train_twenty(mpi(4, "tiny_moe_dp4_ep2", "z-off")));
  const auto sharded = optimizer_bytes_per_rank(train_twenty(mpi(4, "tiny_moe_dp4_ep2", "z-on", "--set parallel.zero1=true")));
  expect_parity("z-off", "z-single", dir().str());
  expect_parity("z-on", "z-single", dir().str());
  const double on_off = max_relative_difference(losses(dir() / "z-on"), losses(dir() / "z-off"), 1, 20);
  ASSERT_EQ(one.size(), 1u);
  ASSERT_EQ(unsharded.size(), 4u);
  ASSERT_EQ(sharded.size(), 4u);
  int64_t total = 0;
  std::cout << "optimizer state bytes per rank: one process " << one[0] << "; dp4 ep2 unsharded";
  for (const auto b : unsharded) std::cout << " " << b;
  std::cout << "; ZeRO-1";
  for (const auto b : sharded) std::cout << " " << b;
  std::cout << "; ZeRO-1 on vs off: max relative loss difference " << on_off << "\n";
  for (size_t r = 0; r < 4; ++r) {
    EXPECT_LT(static_cast<double>(sharded[r]), 0.3 * static_cast<double>(unsharded[r])) << "rank " << r;
    total += sharded[r];
  }
  EXPECT_EQ(total, one[0]);
  EXPECT_LT(on_off, 1e-5);

  const auto to_one = copy_checkpoint(dir(), "z-on", "z-on-to-single", 10);
  auto r = run_command(single("tiny_moe_dp4_ep2", to_one));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_continuation(dir().str(), to_one, "z-on");
  const auto to_sharded = copy_checkpoint(dir(), "z-single", "z-single-to-on", 10);
  r = run_command(mpi(4, "tiny_moe_dp4_ep2", to_sharded, "--set parallel.zero1=true"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_continuation(dir().str(), to_sharded, "z-single");
}

// Every rank's exit status, printed by a shell around each rank (so mpirun does not abort the
// others first): "rank R exit S".
// What a loaded machine may take, beyond a collective's timeout, to end the processes of a run.
constexpr double kTeardownSeconds = 10;

std::string each_rank_reports(const std::string& train_command) {
  return "sh -c '" + train_command + "; echo \"rank $OMPI_COMM_WORLD_RANK exit $?\"'";
}

// Acceptance 6: `bench train` under mpirun runs the recipe's layout and prints one report (rank
// 0's) whose per-rank split of the step (compute, communication, pipeline wait, data) adds up.
TEST_F(TrainDist, BenchTrainUnderMpirunSplitsEachRanksStep) {
  for (const std::string recipe : {"tiny_moe_dp2", "tiny_moe_pp2"}) {
    const auto r = run_command("timeout 600 " + kMpirun + " -np 2 " + kBinary + " bench train --recipe " + kSource +
                               "/recipes/" + recipe + ".toml --steps 2 --json");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    ASSERT_EQ(count(r.output, "\"benchmark\":\"train\""), 1u) << r.output;
    const auto start = r.output.find("{\"");
    const auto report = Json::parse(r.output.substr(start, r.output.find('\n', start) - start));
    EXPECT_EQ(report["world_size"].get<int>(), 2);
    ASSERT_EQ(report["time_split_per_rank"].size(), 2u) << r.output;
    for (const auto& rank : report["time_split_per_rank"]) {
      const double total = rank["compute"].get<double>() + rank["communication"].get<double>() +
                           rank["pipeline_wait"].get<double>() + rank["data"].get<double>();
      EXPECT_NEAR(total, 1.0, 1e-9) << rank.dump();
      if (recipe == "tiny_moe_dp2") {
        EXPECT_EQ(rank["pipeline_wait"].get<double>(), 0.0);
      }
    }
    if (recipe == "tiny_moe_pp2") {
      EXPECT_NEAR(report["ideal_bubble_share"].get<double>(), 1.0 / 5.0, 1e-12);  // (pp-1)/(M+pp-1), M 4
    }
  }
}

TEST_F(TrainDist, ConfigErrorOnOneRankStopsEveryRank) {
  // Only rank 1 sees micro_batch_size 0: its recipe fails to load, the others' loads fine.
  const std::string command =
      kBinary + " train --recipe " + kSource + "/recipes/tiny_moe_dp2.toml --set train.run_dir=" + (dir() / "fault") +
      " --set data.paths=" + store() + " --set log.peak_tflops=1 --set parallel.timeout_s=60" +
      " --set train.micro_batch_size=$((OMPI_COMM_WORLD_RANK == 1 ? 0 : 2))";
  const auto r = run_command("timeout 120 " + kMpirun + " -np 2 " + each_rank_reports(command));
  EXPECT_NE(r.exit_code, 124) << "timed out: " << r.output;
  EXPECT_EQ(count(r.output, "rank 1: train.micro_batch_size (0) must be positive"), 2u) << r.output;
  EXPECT_NE(r.output.find("rank 0 exit 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank 1 exit 1"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir() / "fault/step-000001"));
}

TEST_F(TrainDist, InvalidLayoutStopsEveryRank) {
  const std::string command = kBinary + " train --recipe " + kSource + "/recipes/tiny_moe_ep2.toml --set train.run_dir=" +
                              (dir() / "layout") + " --set data.paths=" + store() +
                              " --set log.peak_tflops=1 --set parallel.timeout_s=60 --set parallel.dp=3";
  const auto r = run_command("timeout 120 " + kMpirun + " -np 2 " + each_rank_reports(command));
  EXPECT_NE(r.exit_code, 124) << "timed out: " << r.output;
  EXPECT_EQ(count(r.output, "parallel.pp (1) x parallel.dp (3) = 3 must equal the number of ranks (2)"), 2u) << r.output;
  EXPECT_NE(r.output.find("rank 0 exit 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank 1 exit 1"), std::string::npos) << r.output;
}

// One rank throws at the start of step 3 while the other waits for it in that step's first
// collective. The collective timeout (600 s) is far beyond the test's limit (120 s), so only the
// failure agreement can end the run in time; both ranks must exit 1 with the failing rank's message.
// Rank 0 hosts the rendezvous store, so its failure is the harder case.
// Under pipeline parallelism (tiny_moe_pp2) the waiting peer is blocked in a receive instead.
TEST_F(TrainDist, FailureOnOneRankMidRunStopsEveryRankWithItsMessage) {
  for (const std::string recipe : {"tiny_moe_dp2", "tiny_moe_pp2"})
  for (const int failing_rank : {1, 0}) {
    SCOPED_TRACE(recipe);
    const std::string run = "midrun-" + recipe + std::to_string(failing_rank);
    const std::string command = kBinary + " train --recipe " + kSource + "/recipes/" + recipe + ".toml --set train.run_dir=" +
                                (dir() / run) + " --set data.paths=" + store() + " --set data.tokenizer=" + kSource +
                                "/assets/tokenizer --set log.peak_tflops=1 --set parallel.timeout_s=600 --set debug.fail_at_step=3" +
                                " --set debug.fail_rank=" + std::to_string(failing_rank);
    const auto r = run_command("timeout 120 " + kMpirun + " -np 2 " + each_rank_reports(command));
    EXPECT_NE(r.exit_code, 124) << "timed out: " << r.output;
    const std::string message = "rank " + std::to_string(failing_rank) +
                                ": debug.fail_at_step: injected failure at step 3 on rank " + std::to_string(failing_rank);
    EXPECT_EQ(count(r.output, message), 2u) << r.output;
    EXPECT_NE(r.output.find("rank 0 exit 1"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("rank 1 exit 1"), std::string::npos) << r.output;
    EXPECT_EQ(losses(dir() / run).size(), 2u) << r.output;
  }
}

// The pid of the rank `rank` process whose command line mentions `marker` (read from /proc).
pid_t rank_process(const std::string& marker, int rank) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string pid = entry.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream cmdline(entry.path() / "cmdline"), environ(entry.path() / "environ");
    const std::string command((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
    const std::string env((std::istreambuf_iterator<char>(environ)), std::istreambuf_iterator<char>());
    const std::string program = command.substr(0, command.find('\0'));
    const bool is_k2forge = program.size() >= 7 && program.compare(program.size() - 7, 7, "k2forge") == 0;
    if (!is_k2forge || command.find(marker) == std::string::npos) continue;
    if (env.find(std::string("OMPI_COMM_WORLD_RANK=") + std::to_string(rank) + '\0') != std::string::npos) {
      return static_cast<pid_t>(std::stol(pid));
    }
  }
  return -1;
}

TEST_F(TrainDist, SigtermToOneRankStopsEveryRankAfterTheSameStepWithACheckpoint) {
  const std::string command = mpi(2, "tiny_moe_dp2", "signal", "--set train.steps=400 --set checkpoint.interval=1000");
  const pid_t launcher = testing::spawn_command(command, dir() / "signal.log");
  ASSERT_TRUE(testing::wait_for_logged_steps(dir() / "signal", 3));
  const pid_t rank1 = rank_process(dir() / "signal", 1);
  ASSERT_GT(rank1, 0) << "rank 1 of the run not found in /proc";
  ::kill(rank1, SIGTERM);  // rank 1 only: rank 0 learns of it through the per-step agreement
  EXPECT_EQ(testing::wait_for_exit(launcher, 300), 0) << read_text_file(dir() / "signal.log");
  const std::string log = read_text_file(dir() / "signal.log");
  EXPECT_NE(log.find("checkpoint written: rerun the same command to continue"), std::string::npos) << log;
  ASSERT_TRUE(fs::exists(dir() / "signal/latest")) << log;
  const int step = std::stoi(read_text_file(dir() / "signal/latest").substr(5));
  EXPECT_EQ(losses(dir() / "signal").size(), static_cast<size_t>(step));
  EXPECT_LT(step, 400);
}

// Issue 5, acceptance 5: a rank killed with SIGKILL reports nothing; the survivor's next collective
// breaks and it exits non-zero with a message, bounded by the configured timeout (20 s here), which
// the test asserts: every rank has exited within it (plus kTeardownSeconds).

// Data parallel (the survivor in an all-reduce) and pipeline parallel (in a receive from the dead stage).
TEST_F(TrainDist, SigkillOfOneRankMakesTheOtherExitNonZeroWithAMessage) {
  for (const std::string recipe : {"tiny_moe_dp2", "tiny_moe_pp2"}) {
    SCOPED_TRACE(recipe);
    const std::string run = "sigkill-" + recipe;
    const std::string command = kBinary + " train --recipe " + kSource + "/recipes/" + recipe + ".toml --set train.run_dir=" +
                                (dir() / run) + " --set data.paths=" + store() + " --set data.tokenizer=" + kSource +
                                "/assets/tokenizer --set log.peak_tflops=1 --set parallel.timeout_s=20 --set train.steps=400" +
                                " --set checkpoint.interval=1000";
    const std::string log_path = dir() / (run + ".log");
    const pid_t launcher = testing::spawn_command(kMpirun + " -np 2 " + each_rank_reports(command), log_path);
    ASSERT_TRUE(testing::wait_for_logged_steps(dir() / run, 3));
    const pid_t rank1 = rank_process(dir() / run, 1);
    ASSERT_GT(rank1, 0) << "rank 1 of the run not found in /proc";
    const auto killed_at = std::chrono::steady_clock::now();
    ::kill(rank1, SIGKILL);
    EXPECT_EQ(testing::wait_for_exit(launcher, 120), 0) << read_text_file(log_path);
    // mpirun returns once every rank has: the survivor must have given up within parallel.timeout_s
    // (plus a few seconds for a loaded machine to tear the processes down).
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
    std::cout << recipe << ": every rank exited " << seconds << " s after the SIGKILL (timeout 20 s)\n";
    EXPECT_LE(seconds, 20.0 + kTeardownSeconds) << read_text_file(log_path);
    const std::string log = read_text_file(log_path);
    EXPECT_NE(log.find("rank 1 exit 137"), std::string::npos) << log;
    EXPECT_NE(log.find("rank 0 exit 1"), std::string::npos) << log;
    EXPECT_NE(log.find("error: rank 0: "), std::string::npos) << log;
  }
}

}  // namespace
}  // namespace k2f
