// model/config.cpp: HF config.json parsing, required fields, unknown fields kept, validation.
#include <gtest/gtest.h>

#include "model/config.h"
#include "test_util.h"

namespace k2f::model {
namespace {

// The published Kimi-K2-Instruct config.json fields (K2_REFERENCE section 1), plus fields
// k2forge does not know, which must survive a round trip.
Json k2_instruct_json() {
  return Json::parse(R"({
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "kimi_k2",
    "auto_map": {"AutoConfig": "configuration_deepseek.DeepseekV3Config"},
    "vocab_size": 163840, "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
    "num_hidden_layers": 61, "num_attention_heads": 64, "num_key_value_heads": 64,
    "n_routed_experts": 384, "num_experts_per_tok": 8, "n_shared_experts": 1,
    "first_k_dense_replace": 1, "moe_layer_freq": 1, "q_lora_rank": 1536, "kv_lora_rank": 512,
    "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "rope_theta": 50000.0,
    "rope_scaling": {"type": "yarn", "factor": 32.0, "original_max_position_embeddings": 4096,
                     "beta_fast": 1.0, "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0},
    "max_position_embeddings": 131072, "scoring_func": "sigmoid", "topk_method": "noaux_tc",
    "n_group": 1, "topk_group": 1, "norm_topk_prob": true, "routed_scaling_factor": 2.827,
    "rms_norm_eps": 1e-6, "tie_word_embeddings": false, "bos_token_id": 163584, "eos_token_id": 163585,
    "aux_loss_alpha": 0.001, "seq_aux": true, "num_nextn_predict_layers": 0, "torch_dtype": "bfloat16",
    "use_cache": true, "ep_size": 1, "pretraining_tp": 1
  })");
}

TEST(ModelConfig, ParsesKimiK2ConfigJson) {
  const auto c = ModelConfig::from_hf_json(k2_instruct_json(), "config.json");
  const auto k2 = kimi_k2_config();
  EXPECT_EQ(c.hidden_size, k2.hidden_size);
  EXPECT_EQ(c.n_routed_experts, 384);
  EXPECT_EQ(*c.q_lora_rank, 1536);
  EXPECT_DOUBLE_EQ(c.rope_scaling->factor, 32.0);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.827);
  EXPECT_EQ(c.bos_token_id, 163584);
  EXPECT_TRUE(c.is_moe_layer(1));
  EXPECT_FALSE(c.is_moe_layer(0));
}

TEST(ModelConfig, KeepsUnknownFieldsThroughRoundTrip) {
  const auto c = ModelConfig::from_hf_json(k2_instruct_json(), "config.json");
  EXPECT_EQ(c.extra_fields.at("ep_size"), 1);
  const auto written = c.to_hf_json();
  EXPECT_EQ(written.at("auto_map").at("AutoConfig"), "configuration_deepseek.DeepseekV3Config");
  const auto again = ModelConfig::from_hf_json(written, "written");
  EXPECT_EQ(again.to_hf_json(), written);
}

TEST(ModelConfig, QLoraRankMayBeNull) {
  auto json = k2_instruct_json();
  json["q_lora_rank"] = nullptr;
  EXPECT_FALSE(ModelConfig::from_hf_json(json, "config.json").q_lora_rank.has_value());
}

TEST(ModelConfig, MissingRequiredFieldIsNamed) {
  auto json = k2_instruct_json();
  json.erase("kv_lora_rank");
  testing::expect_error([&] { ModelConfig::from_hf_json(json, "dir/config.json"); },
                        {"dir/config.json", "missing required field", "kv_lora_rank"});
}

TEST(ModelConfig, WrongTypeIsNamed) {
  auto json = k2_instruct_json();
  json["hidden_size"] = "big";
  testing::expect_error([&] { ModelConfig::from_hf_json(json, "config.json"); },
                        {"hidden_size", "expected an integer", "\"big\""});
}

TEST(ModelConfig, CrossFieldViolationQuotesValues) {
  auto json = k2_instruct_json();
  json["n_group"] = 5;
  testing::expect_error([&] { ModelConfig::from_hf_json(json, "config.json"); },
                        {"n_group (5) must divide n_routed_experts (384)"});
}

}  // namespace
}  // namespace k2f::model
