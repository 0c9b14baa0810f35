// LoRA through the `k2forge` binary (trainer, checkpoint, score and export): a LoRA run on an
// INT4 base (a seeded tiny model exported as K2 Thinking ships, routed experts packed) trains only
// its adapters on a chat file, checkpoints only them with a record of the base's files, and leaves
// every byte of the base as it was; the checkpoint scores like its merged export, and exports as
// a PEFT adapter directory with PEFT's fields and names, which `score --adapter` applies to the base
// as an independent PEFT reference does (tests/reference/apply_peft_adapter.py); with the
// quantisation-aware merge its merged INT4 export computes what training computed; adapters never
// meet another base, and bad settings (and a base the recipe does not describe) fail before
// anything is written.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "base/json_io.h"
#include "data/token_store.h"
#include "e2e/e2e_paths.h"
#include "e2e/logprob_tables.h"
#include "model/safetensors.h"
#include "train/model_loading.h"

namespace k2f::lora_cli {  // its own namespace: the e2e sources build as one unit
namespace {

namespace fs = std::filesystem;
using testing::kBinary;
using testing::kSource;
using testing::max_abs_difference;
using testing::run_command;
using testing::ScratchDir;

const std::string kRecipe = kSource + "/recipes/tiny_qat_int4.toml";

std::string lora_train_command(const std::string& base, const std::string& store, const std::string& run_dir,
                               const std::string& extra = "") {
  return kBinary + " train --recipe " + kRecipe + " --set quant.qat=false --set lora.rank=4 --set lora.alpha=8" +
         " --set train.init_from=" + base + " --set data.paths=" + store + " --set train.run_dir=" + run_dir +
         " --set train.steps=6 --set schedule.name=constant --set schedule.warmup_steps=0 --set schedule.decay_steps=0 --set optim.lr=0.01 --set checkpoint.interval=6" +
         " --set train.global_batch_size=4 --set train.micro_batch_size=2 --set train.seq_len=64" +
         " --set train.dtype=fp32 --set log.peak_tflops=1 --set data.tokenizer=" + kSource + "/assets/tokenizer " + extra;
}

struct LoraRun {
  ScratchDir dir{"lora-cli"};
  std::string base, store, checkpoint;
  Json base_files_before;
};

const LoraRun& lora_run() {
  static LoraRun run;
  if (!run.checkpoint.empty()) return run;
  auto r = run_command(kBinary + " init --recipe " + kRecipe + " --set train.run_dir=" + (run.dir / "init") +
                       " --out " + (run.dir / "base-fp32") + " --format hf-fp32");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  run.base = run.dir / "base";
  r = run_command(kBinary + " export --checkpoint " + (run.dir / "base-fp32") + " --out " + run.base + " --format hf-int4");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  run.store = run.dir / "chat.h5";
  r = run_command(kBinary + " data build --input " + kSource + "/assets/chat/example.jsonl --tokenizer " + kSource +
                  "/assets/tokenizer --out " + run.store + " --kind chat");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  run.base_files_before = train::directory_checksums(run.base);
  r = run_command(lora_train_command(run.base, run.store, run.dir / "run"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("LoRA rank 4"), std::string::npos) << r.output;
  run.checkpoint = run.dir / "run/step-000006";
  return run;
}

std::string token_rows(const ScratchDir& dir) {
  Json rows = Json::array();
  for (int row = 0; row < 3; ++row) {
    Json ids = Json::array();
    for (int t = 0; t < 40; ++t) ids.push_back((row * 977 + t * 131) % 4096);
    rows.push_back(ids);
  }
  write_text_file_atomic(dir / "tokens.json", rows.dump());
  return dir / "tokens.json";
}

Json score(const std::string& model_dir, const std::string& tokens, const std::string& out) {
  const auto r = run_command(kBinary + " score --model " + model_dir + " --tokens " + tokens + " --out " + out);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return read_json_file(out)["logprobs"];
}

TEST(LoraCli, TrainsOnlyTheAdaptersAndLeavesEveryByteOfTheBase) {
  const auto& run = lora_run();
  ASSERT_TRUE(fs::exists(run.checkpoint + "/meta.json"));
  const model::SafetensorsFile adapters(run.checkpoint + "/model-rank00000.safetensors");
  EXPECT_FALSE(adapters.names().empty());
  for (const auto& name : adapters.names()) {
    EXPECT_EQ(name.rfind("base_model.model.model.layers.", 0), 0u) << name;
    EXPECT_TRUE(name.find(".lora_A.weight") != std::string::npos || name.find(".lora_B.weight") != std::string::npos) << name;
  }
  const Json meta = read_json_file(run.checkpoint + "/meta.json");
  EXPECT_EQ(meta["lora"]["rank"], 4);
  EXPECT_EQ(meta["lora"]["base"], fs::absolute(run.base).lexically_normal().string());
  EXPECT_EQ(meta["lora"]["base_files"], run.base_files_before);
  EXPECT_EQ(train::directory_checksums(run.base), run.base_files_before);

  std::vector<double> losses;
  std::ifstream metrics(run.dir / "run/metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) losses.push_back(Json::parse(line)["loss"].get<double>());
  ASSERT_EQ(losses.size(), 6u);
  std::cout << "[ lora ] loss " << losses.front() << " -> " << losses.back() << "\n";
  EXPECT_LT(losses.back(), losses.front());
}

// A LoRA run stopped after 3 steps and rerun ends with the adapters and optimizer state of the
// uninterrupted run, byte for byte, and the same losses.
TEST(LoraCli, StopAndRerunEqualsOneRunBitwise) {
  const auto& run = lora_run();
  ScratchDir out("lora-resume");
  auto r = run_command(lora_train_command(run.base, run.store, out / "run") + " --stop-after 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(fs::exists(out / "run/step-000003/meta.json"));
  r = run_command(lora_train_command(run.base, run.store, out / "run"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
  for (const char* file : {"model-rank00000.safetensors", "optimizer-rank00000.safetensors"})
    EXPECT_EQ(read_text_file(out / (std::string("run/step-000006/") + file)), read_text_file(run.checkpoint + "/" + file)) << file;
  const auto losses = [](const std::string& metrics_path) {
    std::vector<double> values;
    std::ifstream in(metrics_path);
    for (std::string line; std::getline(in, line);) values.push_back(Json::parse(line)["loss"].get<double>());
    return values;
  };
  EXPECT_EQ(losses(out / "run/metrics.jsonl"), losses(run.dir / "run/metrics.jsonl"));
}

// Held-out loss of chat data: `score --store` averages the log-probabilities of the store's targets
// (its loss mask: what the assistant writes), as training's loss does.
TEST(LoraCli, ScoreOfAChatStoreAveragesOnlyWhatTheAssistantWrites) {
  const auto& run = lora_run();
  ScratchDir out("lora-store");
  const auto r = run_command(kBinary + " score --model " + run.checkpoint + " --store " + run.store + " --row-tokens 64 --out " +
                             (out / "s.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Json scored = read_json_file(out / "s.json");
  const data::TokenStore store(run.store);
  ASSERT_TRUE(store.has_loss_mask());
  double sum = 0;
  int64_t targets = 0, predictions = 0;
  size_t row = 0;
  const auto& offsets = store.doc_offsets();
  for (size_t d = 0; d + 1 < offsets.size(); ++d) {
    for (int64_t start = offsets[d]; start < offsets[d + 1]; start += 64, ++row) {
      const int64_t count = std::min<int64_t>(64, offsets[d + 1] - start);
      std::vector<uint8_t> mask(static_cast<size_t>(count));
      store.read_loss_mask(start, count, mask.data());
      ASSERT_LT(row, scored["logprobs"].size());
      const Json& lp = scored["logprobs"][row];
      ASSERT_EQ(static_cast<int64_t>(lp.size()), count - 1);
      for (int64_t t = 0; t + 1 < count; ++t, ++predictions) {
        if (mask[static_cast<size_t>(t) + 1] == 0) continue;
        sum -= lp[static_cast<size_t>(t)].get<double>();
        ++targets;
      }
    }
  }
  EXPECT_EQ(row, scored["logprobs"].size());
  EXPECT_EQ(scored["predictions"], targets);
  EXPECT_GT(targets, 0);
  EXPECT_LT(targets, predictions);  // the user's and the tool's tokens are not targets
  EXPECT_NEAR(scored["nll_mean"].get<double>(), sum / static_cast<double>(targets), 1e-9);
}

TEST(LoraCli, ScoresLikeItsMergedExportAndExportsAPeftDirectory) {
  const auto& run = lora_run();
  ScratchDir out("lora-export");
  const auto tokens = token_rows(out);
  const auto adapted = score(run.checkpoint, tokens, out / "adapted.json");
  const auto base = score(run.base, tokens, out / "base.json");
  auto r = run_command(kBinary + " export --checkpoint " + run.checkpoint + " --out " + (out / "merged") + " --format hf-fp32");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto merged = score(out / "merged", tokens, out / "merged.json");
  const double merged_gap = max_abs_difference(adapted, merged), trained = max_abs_difference(adapted, base);
  std::cout << "[ lora ] max |logprob(adapted) - logprob(merged fp32 export)| = " << merged_gap
            << ", max |adapted - base| = " << trained << "\n";
  EXPECT_LE(merged_gap, 1e-4);
  EXPECT_GT(trained, 1e-3);  // the adapters changed what the model computes

  r = run_command(kBinary + " export --checkpoint " + run.checkpoint + " --out " + (out / "peft") + " --format peft");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Json config = read_json_file(out / "peft/adapter_config.json");
  EXPECT_EQ(config["peft_type"], "LORA");
  EXPECT_EQ(config["task_type"], "CAUSAL_LM");
  EXPECT_EQ(config["r"], 4);
  EXPECT_EQ(config["lora_alpha"], 8.0);
  EXPECT_EQ(config["bias"], "none");
  EXPECT_EQ(config["use_rslora"], false);
  EXPECT_EQ(config["base_model_name_or_path"], fs::absolute(run.base).lexically_normal().string());
  // The default targets, each by the shortest suffix PEFT matches that leaves the routed experts'
  // projections (also named gate_proj, up_proj, down_proj) out.
  EXPECT_EQ(config["target_modules"].get<std::vector<std::string>>(),
            (std::vector<std::string>{"kv_a_proj_with_mqa", "kv_b_proj", "mlp.down_proj", "mlp.gate_proj", "mlp.up_proj",
                                      "o_proj", "q_a_proj", "q_b_proj", "shared_experts.down_proj",
                                      "shared_experts.gate_proj", "shared_experts.up_proj"}));
  const model::SafetensorsFile peft(out / "peft/adapter_model.safetensors");
  const model::SafetensorsFile checkpoint(run.checkpoint + "/model-rank00000.safetensors");
  EXPECT_EQ(peft.names().size(), checkpoint.names().size());
  const std::string a = "base_model.model.model.layers.1.self_attn.q_b_proj.lora_A.weight";
  EXPECT_EQ(peft.entry(a).shape, (std::vector<int64_t>{4, 96}));  // [r, in]
  EXPECT_TRUE(torch::equal(peft.load(a), checkpoint.load(a)));
}

TEST(LoraCli, ThePeftAdapterScoresLikeAnIndependentPeftReference) {
  const auto& run = lora_run();
  ScratchDir out("lora-peft");
  const std::string base = run.dir / "base-fp32";  // the reference reads F32 and BF16 weights
  auto r = run_command(lora_train_command(base, run.store, out / "run", "--set train.steps=2 --set checkpoint.interval=2"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_command(kBinary + " export --checkpoint " + (out / "run/step-000002") + " --out " + (out / "peft") + " --format peft");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto tokens = token_rows(out);
  r = run_command(kBinary + " score --model " + base + " --adapter " + (out / "peft") + " --tokens " + tokens + " --out " +
                  (out / "with_adapter.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Json with_adapter = read_json_file(out / "with_adapter.json")["logprobs"];
  const Json checkpoint = score(out / "run/step-000002", tokens, out / "checkpoint.json");
  r = run_command("/usr/bin/python3 " + kSource + "/tests/reference/apply_peft_adapter.py " + base + " " + (out / "peft") +
                  " " + tokens + " " + (out / "reference.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Json reference = read_json_file(out / "reference.json")["logprobs"];
  const double to_reference = max_abs_difference(with_adapter, reference);
  const double to_checkpoint = max_abs_difference(with_adapter, checkpoint);
  std::cout << "[ lora ] " << r.output << "[ lora ] max |score --adapter - PEFT reference (fp64)| = " << to_reference
            << ", max |score --adapter - score of the LoRA checkpoint| = " << to_checkpoint << "\n";
  EXPECT_LE(to_reference, 1e-4);
  EXPECT_LE(to_checkpoint, 1e-6);

  // An adapter whose config does not select its own tensors, and one for another model, are refused.
  fs::copy(out / "peft", out / "narrowed", fs::copy_options::recursive);
  Json config = read_json_file(out / "narrowed/adapter_config.json");
  config["target_modules"] = {"q_b_proj"};
  write_text_file_atomic(out / "narrowed/adapter_config.json", config.dump());
  r = run_command(kBinary + " score --model " + base + " --adapter " + (out / "narrowed") + " --tokens " + tokens +
                  " --out " + (out / "refused.json"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("target_modules does not select model.layers.0.self_attn.q_a_proj"), std::string::npos)
      << r.output;
  const std::string other = std::string(K2F_REFERENCE_DIR) + "/default";
  r = run_command(kBinary + " score --model " + other + "/model --adapter " + (out / "peft") + " --tokens " + other +
                  "/tokens.json --out " + (out / "refused.json"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("an adapter for another base?"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out / "refused.json"));
}

// lora.quantized_merge on the INT4 base, adapting routed experts (stored INT4) and attention (bf16):
// the merged INT4 export scores like the LoRA checkpoint; the plain merge of the same run without
// the option loses what the rounding removes.
TEST(LoraCli, TheQuantizedMergeExportsToInt4ExactlyWhatTrainingComputed) {
  const auto& run = lora_run();
  ScratchDir out("lora-qmerge");
  const auto tokens = token_rows(out);
  const std::string targets = "--set 'lora.targets=re:.*experts\\.[0-9]+\\.(gate|up|down)_proj$,re:.*self_attn\\.o_proj$'";
  std::map<bool, double> export_gap;
  for (const bool quantized_merge : {true, false}) {
    const std::string name = quantized_merge ? "quantized" : "plain";
    auto r = run_command(lora_train_command(run.base, run.store, out / name, targets + " --set lora.quantized_merge=" +
                                                                                 (quantized_merge ? "true" : "false")));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const std::string checkpoint = out / (name + "/step-000006");
    EXPECT_EQ(read_json_file(checkpoint + "/meta.json")["lora"]["quantized_merge"], quantized_merge);
    r = run_command(kBinary + " export --checkpoint " + checkpoint + " --out " + (out / (name + "-int4")) + " --format hf-int4");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto adapted = score(checkpoint, tokens, out / (name + ".json"));
    const auto exported = score(out / (name + "-int4"), tokens, out / (name + "-int4.json"));
    export_gap[quantized_merge] = max_abs_difference(adapted, exported);
    std::cout << "[ lora ] " << name << " merge: max |logprob(LoRA checkpoint) - logprob(merged INT4 export)| = "
              << export_gap[quantized_merge] << "\n";
  }
  EXPECT_LE(export_gap[true], 1e-6);
  EXPECT_GT(export_gap[false], 100 * export_gap[true]);
}

TEST(LoraCli, AdaptersNeverMeetAnotherBaseAndBadSettingsWriteNothing) {
  const auto& run = lora_run();
  ScratchDir out("lora-bad");
  // A copy of the base, trained on, then changed: scoring, exporting and resuming all refuse.
  fs::copy(run.base, out / "base", fs::copy_options::recursive);
  auto r = run_command(lora_train_command(out / "base", run.store, out / "run", "--set train.steps=1 --set checkpoint.interval=1"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  write_text_file_atomic(out / "base/notes.txt", "changed\n");
  r = run_command(kBinary + " score --model " + (out / "run/step-000001") + " --tokens " + token_rows(out) + " --out " +
                  (out / "s.json"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("notes.txt was not in the base"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out / "s.json"));
  r = run_command(kBinary + " export --checkpoint " + (out / "run/step-000001") + " --out " + (out / "peft") + " --format peft");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(fs::exists(out / "peft"));
  r = run_command(lora_train_command(out / "base", run.store, out / "run", "--set train.steps=2 --set checkpoint.interval=1"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("was not in the base"), std::string::npos) << r.output;

  for (const auto& [extra, message] :
       std::vector<std::pair<std::string, std::string>>{
           {"--set 'lora.targets=re:.*nothing_like_this'", "lora.targets / lora.ignore select no Linear"},
           {"--set lora.rank=65", "exceeds min(in, out)"},
           {"--set train.init_from=", "set train.init_from"},
           {"--set lora.optimizer=sgd", "lora.optimizer (\"sgd\")"},
           {"--set model.rope_theta=10000", "its model has rope_theta = 50000.0, the recipe's [model] has 10000.0"},
           {"--set model.num_hidden_layers=3", "its model has num_hidden_layers = 4"},
           {"--set quant.qat=true", "quant.qat with lora.rank (4): the base is frozen"},
           {"--set lora.quantized_merge=true --set lora.dropout=0.1", "lora.dropout (0.1) with lora.quantized_merge"},
           {"--set train.init_from=" + run.checkpoint, "is itself a LoRA checkpoint"}}) {
    const std::string run_dir = out / "refused";
    r = run_command(lora_train_command(run.base, run.store, run_dir, extra));
    EXPECT_NE(r.exit_code, 0) << extra;
    EXPECT_NE(r.output.find(message), std::string::npos) << extra << "\n" << r.output;
    EXPECT_FALSE(fs::exists(run_dir)) << extra;
  }
  // The base is as it was.
  EXPECT_EQ(train::directory_checksums(run.base), run.base_files_before);
}

}  // namespace
}  // namespace k2f::lora_cli
