// model/hf_checkpoint.cpp: export -> import is exact (fp32) or bf16-rounded, shards respect the
// size limit with a correct index, exports never overwrite, and import errors name the fault.
#include <gtest/gtest.h>

#include <filesystem>

#include "model/hf_checkpoint.h"
#include "model/hf_export.h"
#include "test_util.h"
#include "tiny_config.h"

namespace k2f::model {
namespace {

KimiForCausalLM tiny_model() {
  KimiForCausalLM lm(testing::tiny_config());
  init_weights(lm, 9);
  torch::NoGradGuard no_grad;
  lm->named_buffers()["model.layers.1.mlp.gate.e_score_correction_bias"].uniform_(-0.1, 0.1);
  return lm;
}

TEST(HfCheckpoint, Fp32RoundTripIsExactAndShardedWithIndex) {
  testing::ScratchDir dir("hf");
  auto lm = tiny_model();
  HfExportOptions options;
  options.dtype = torch::kFloat32;
  options.max_shard_bytes = 20000;
  export_hf_directory(*lm, lm->model->config, dir / "out", options);
  const Json index = read_json_file(dir / "out/model.safetensors.index.json");
  std::set<std::string> files;
  int64_t total = 0;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) files.insert(it.value());
  for (const auto& f : files) {
    const auto size = std::filesystem::file_size(dir / ("out/" + f));
    SafetensorsFile file(dir / ("out/" + f));
    for (const auto& name : file.names()) total += file.entry(name).end - file.entry(name).begin;
    EXPECT_LE(size, 20000u + 4096u) << f;  // limit plus header, unless one tensor is larger
  }
  EXPECT_GT(files.size(), 3u);
  EXPECT_EQ(index["metadata"]["total_size"].get<int64_t>(), total);

  const auto loaded = load_hf_model(dir / "out");
  const auto original = named_state(*lm);
  const auto reloaded = named_state(*loaded);
  ASSERT_EQ(original.size(), reloaded.size());
  for (size_t i = 0; i < original.size(); ++i) {
    EXPECT_EQ(original[i].first, reloaded[i].first);
    EXPECT_TRUE(torch::equal(original[i].second, reloaded[i].second)) << original[i].first;
  }
}

TEST(HfCheckpoint, Bf16ExportRoundsWeightsAndKeepsRouterBiasFp32) {
  testing::ScratchDir dir("hf");
  auto lm = tiny_model();
  export_hf_directory(*lm, lm->model->config, dir / "out");
  HfDirectory directory(dir / "out");
  EXPECT_EQ(directory.entry("model.layers.1.self_attn.o_proj.weight").dtype, StDtype::BF16);
  EXPECT_EQ(directory.entry("model.layers.1.mlp.gate.e_score_correction_bias").dtype, StDtype::F32);
  const auto loaded = load_hf_model(dir / "out");
  const auto w = lm->named_parameters()["model.layers.1.mlp.experts.3.up_proj.weight"];
  EXPECT_TRUE(torch::equal(loaded->named_parameters()["model.layers.1.mlp.experts.3.up_proj.weight"],
                           w.to(torch::kBFloat16).to(torch::kFloat32)));
  EXPECT_TRUE(read_json_file(dir / "out/config.json").at("torch_dtype") == "bfloat16");
}

TEST(HfCheckpoint, NeverOverwritesAnExistingDirectory) {
  testing::ScratchDir dir("hf");
  auto lm = tiny_model();
  std::filesystem::create_directories(dir / "taken");
  testing::expect_error([&] { export_hf_directory(*lm, lm->model->config, dir / "taken"); }, {"already exists"});
  EXPECT_TRUE(std::filesystem::is_empty(dir / "taken"));
}

TEST(HfCheckpoint, ImportErrorsNameTensorAndFile) {
  testing::ScratchDir dir("hf");
  auto lm = tiny_model();
  export_hf_directory(*lm, lm->model->config, dir / "out");
  // A model whose expert width differs: shape mismatch, "expected X, got Y".
  auto wider = testing::tiny_config();
  wider.moe_intermediate_size = 20;
  KimiForCausalLM other(wider);
  HfDirectory directory(dir / "out");
  testing::expect_error([&] { load_hf_weights(*other, directory); },
                        {"model-00001-of-00001.safetensors", "model.layers.1.mlp.experts.0.gate_proj.weight",
                         "expected shape [20, 32], got [16, 32]"});
  // An index without one of the tensors the model needs.
  Json index = read_json_file(dir / "out/model.safetensors.index.json");
  index["weight_map"].erase("model.layers.1.mlp.experts.5.down_proj.weight");
  write_text_file_atomic(dir / "out/model.safetensors.index.json", index.dump());
  HfDirectory pruned(dir / "out");
  KimiForCausalLM same(testing::tiny_config());
  testing::expect_error([&] { load_hf_weights(*same, pruned); },
                        {"model.safetensors.index.json", "no entry for tensor",
                         "model.layers.1.mlp.experts.5.down_proj.weight"});
}

}  // namespace
}  // namespace k2f::model
