// The planner's parameter counts against the model's own: for each config and layout, the tensors
// of a KimiForCausalLM built with one ep rank's experts, grouped by the stage that holds them,
// must add up to exactly what stage_layouts says one GPU of that stage keeps.
#include <gtest/gtest.h>

#include <regex>

#include "model/kimi_model.h"
#include "parallel/pipeline_schedule.h"
#include "train/plan/plan_configs.h"
#include "train/plan/stage_layout.h"

namespace k2f::train::plan {
namespace {

// Numel per stage of the model's parameters and buffers, by HF name.
std::vector<int64_t> numel_per_stage(const model::ModelConfig& c, const parallel::ParallelLayout& layout,
                                     int64_t ep_rank) {
  const int64_t local = c.n_routed_experts / layout.ep;
  model::KimiForCausalLM m(c, model::ExpertSlice{ep_rank * local, local});
  const auto bounds = parallel::chunk_boundaries(c.num_hidden_layers, layout.pp * layout.virtual_stages);
  std::vector<int64_t> numel(static_cast<size_t>(layout.pp), 0);
  const std::regex layer_name(R"(model\.layers\.(\d+)\..*)");
  for (const auto& [name, tensor] : model::named_state(*m)) {
    std::smatch match;
    int64_t stage = layout.pp - 1;  // final norm, lm_head
    if (name.rfind("model.embed_tokens", 0) == 0) stage = 0;
    if (std::regex_match(name, match, layer_name)) {
      const int64_t layer = std::stoll(match[1]);
      for (size_t chunk = 0; chunk + 1 < bounds.size(); ++chunk) {
        if (layer >= bounds[chunk] && layer < bounds[chunk + 1]) stage = static_cast<int64_t>(chunk) % layout.pp;
      }
    }
    numel[static_cast<size_t>(stage)] += tensor.numel();
  }
  return numel;
}

TEST(StageLayout, ParameterCountsEqualTheBuiltModelPerStage) {
  struct Case {
    int64_t pp, ep, v;
  };
  for (const auto& config : k2f::testing::planner_configs()) {
    for (const Case& k : {Case{1, 1, 1}, Case{1, 2, 1}, Case{2, 4, 1}, Case{2, 2, 2}}) {
      if (k.pp * k.v > config.num_hidden_layers) continue;
      parallel::ParallelLayout layout;
      layout.pp = k.pp;
      layout.ep = k.ep;
      layout.dp = k.ep;
      layout.virtual_stages = k.v;
      layout.schedule = k.v > 1 ? "interleaved" : "1f1b";
      const auto stages = stage_layouts(config, layout, /*muon=*/true);
      ASSERT_EQ(static_cast<int64_t>(stages.size()), k.pp);
      const auto expected = numel_per_stage(config, layout, /*ep_rank=*/k.ep - 1);
      int64_t layers = 0;
      for (const auto& s : stages) {
        EXPECT_EQ(s.stored_params(), expected[static_cast<size_t>(s.stage)])
            << "pp " << k.pp << " ep " << k.ep << " v " << k.v << " stage " << s.stage << " q_lora "
            << config.q_lora_rank.has_value() << " shared " << config.n_shared_experts;
        EXPECT_EQ(s.muon_params + s.adamw_params, s.trained_params());
        layers += static_cast<int64_t>(s.layers.size());
      }
      EXPECT_EQ(layers, config.num_hidden_layers);
    }
  }
}

TEST(StageLayout, AdamWOwnsEmbeddingHeadAndNormsUnderMuonClip) {
  const auto config = k2f::testing::planner_configs()[0];
  parallel::ParallelLayout layout;
  const auto muon = stage_layouts(config, layout, true).front();
  const int64_t D = config.hidden_size, L = config.num_hidden_layers;
  const int64_t norms = D + L * (2 * D + *config.q_lora_rank + config.kv_lora_rank);
  EXPECT_EQ(muon.adamw_params, 2 * config.vocab_size * D + norms);
  const auto adamw = stage_layouts(config, layout, false).front();
  EXPECT_EQ(adamw.muon_params, 0);
  EXPECT_EQ(adamw.adamw_params, adamw.trained_params());
}

TEST(StageLayout, ChunksCountEmbeddingAndHeadAsOneLayerEach) {
  const auto bounds = parallel::chunk_boundaries(61, 32);  // K2: 63 items, 32 chunks of 2 but the first
  ASSERT_EQ(bounds.size(), 33u);
  EXPECT_EQ(bounds.front(), 0);
  EXPECT_EQ(bounds.back(), 61);
  EXPECT_EQ(bounds[1], 0);   // chunk 0: the embedding alone
  EXPECT_EQ(bounds[31], 60);  // chunk 31: layer 60 and the head
  for (size_t c = 1; c + 2 < bounds.size(); ++c) EXPECT_EQ(bounds[c + 1] - bounds[c], 2) << c;
  parallel::ParallelLayout layout;
  layout.pp = 16;
  layout.virtual_stages = 2;
  layout.ep = 16;
  layout.dp = 128;
  layout.schedule = "interleaved";
  const auto stages = stage_layouts(model::kimi_k2_config(), layout, true);
  EXPECT_TRUE(stages.front().has_embedding);
  EXPECT_TRUE(stages.back().has_head);
  EXPECT_EQ(stages[0].layers, (std::vector<int64_t>{30, 31}));  // chunks 0 and 16
  EXPECT_EQ(stages[1].layers, (std::vector<int64_t>{0, 1, 32, 33}));
  EXPECT_EQ(stages[15].layers, (std::vector<int64_t>{28, 29, 60}));
}

}  // namespace
}  // namespace k2f::train::plan
