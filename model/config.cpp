#include "model/config.h"

#include <cmath>
#include <set>

#include "base/error.h"

namespace k2f::model {
namespace {

// Reads typed fields out of a config.json object, remembering which keys it has seen so the
// rest can be kept as unknown fields.
class FieldReader {
 public:
  FieldReader(const Json& json, const std::string& source) : json_(json), source_(source) {}

  bool has(const std::string& key) const { return json_.contains(key); }

  template <typename T>
  void required(const std::string& key, T& out) {
    seen_.insert(key);
    check(json_.contains(key), source_, ": missing required field \"", key, "\"");
    read(key, json_.at(key), out);
  }

  template <typename T>
  void optional(const std::string& key, T& out) {
    seen_.insert(key);
    if (json_.contains(key) && !json_.at(key).is_null()) read(key, json_.at(key), out);
  }

  // A required field whose value may be null.
  void required_nullable(const std::string& key, std::optional<int64_t>& out) {
    seen_.insert(key);
    check(json_.contains(key), source_, ": missing required field \"", key, "\" (it may be null)");
    if (json_.at(key).is_null()) {
      out.reset();
    } else {
      int64_t value = 0;
      read(key, json_.at(key), value);
      out = value;
    }
  }

  void mark_seen(const std::string& key) { seen_.insert(key); }

  Json unseen() const {
    Json rest = Json::object();
    for (auto it = json_.begin(); it != json_.end(); ++it) {
      if (!seen_.count(it.key())) rest[it.key()] = it.value();
    }
    return rest;
  }

  void read(const std::string& key, const Json& value, int64_t& out) const {
    check(value.is_number_integer(), source_, ": field \"", key, "\": expected an integer, got ", value.dump());
    out = value.get<int64_t>();
  }
  void read(const std::string& key, const Json& value, double& out) const {
    check(value.is_number(), source_, ": field \"", key, "\": expected a number, got ", value.dump());
    out = value.get<double>();
  }
  void read(const std::string& key, const Json& value, bool& out) const {
    check(value.is_boolean(), source_, ": field \"", key, "\": expected true or false, got ", value.dump());
    out = value.get<bool>();
  }
  void read(const std::string& key, const Json& value, std::string& out) const {
    check(value.is_string(), source_, ": field \"", key, "\": expected a string, got ", value.dump());
    out = value.get<std::string>();
  }

 private:
  const Json& json_;
  std::string source_;
  std::set<std::string> seen_;
};

RopeScaling read_rope_scaling(const Json& json, const std::string& source) {
  check(json.is_object(), source, ": field \"rope_scaling\": expected an object or null, got ", json.dump());
  FieldReader reader(json, source + " rope_scaling");
  RopeScaling scaling;
  if (reader.has("type")) {
    reader.required("type", scaling.type);
  } else {
    reader.required("rope_type", scaling.type);
  }
  check(scaling.type == "yarn", source, ": rope_scaling type \"", scaling.type,
        "\" is not handled: k2forge implements \"yarn\" (the Kimi-K2 / DeepSeek-V3 scaling)");
  reader.required("factor", scaling.factor);
  reader.optional("original_max_position_embeddings", scaling.original_max_position_embeddings);
  reader.optional("beta_fast", scaling.beta_fast);
  reader.optional("beta_slow", scaling.beta_slow);
  reader.optional("mscale", scaling.mscale);
  reader.optional("mscale_all_dim", scaling.mscale_all_dim);
  return scaling;
}

double yarn_get_mscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

}  // namespace

double ModelConfig::softmax_scale() const {
  double scale = 1.0 / std::sqrt(static_cast<double>(q_head_dim()));
  if (rope_scaling && rope_scaling->mscale_all_dim != 0.0) {
    const double m = yarn_get_mscale(rope_scaling->factor, rope_scaling->mscale_all_dim);
    scale *= m * m;
  }
  return scale;
}

void ModelConfig::validate(const std::string& prefix) const {
  auto name = [&](const char* field) { return prefix.empty() ? std::string(field) : prefix + "." + field; };
  auto positive = [&](const char* field, int64_t value) {
    check(value > 0, name(field), " (", value, ") must be positive");
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("kv_lora_rank", kv_lora_rank);
  positive("qk_nope_head_dim", qk_nope_head_dim);
  positive("qk_rope_head_dim", qk_rope_head_dim);
  positive("v_head_dim", v_head_dim);
  positive("moe_layer_freq", moe_layer_freq);
  if (q_lora_rank) positive("q_lora_rank", *q_lora_rank);
  check(qk_rope_head_dim % 2 == 0, name("qk_rope_head_dim"), " (", qk_rope_head_dim, ") must be even");
  check(num_key_value_heads == num_attention_heads, name("num_key_value_heads"), " (", num_key_value_heads,
        ") must equal ", name("num_attention_heads"), " (", num_attention_heads, "): MLA has one key per head");
  check(first_k_dense_replace >= 0, name("first_k_dense_replace"), " (", first_k_dense_replace, ") must be >= 0");
  check(n_shared_experts >= 0, name("n_shared_experts"), " (", n_shared_experts, ") must be >= 0");
  check(n_routed_experts >= 0, name("n_routed_experts"), " (", n_routed_experts, ") must be >= 0");
  bool any_dense = false, any_moe = false;
  for (int64_t layer = 0; layer < num_hidden_layers; ++layer) (is_moe_layer(layer) ? any_moe : any_dense) = true;
  if (any_dense) positive("intermediate_size", intermediate_size);
  if (any_moe) {
    positive("moe_intermediate_size", moe_intermediate_size);
    positive("num_experts_per_tok", num_experts_per_tok);
    positive("n_group", n_group);
    check(num_experts_per_tok <= n_routed_experts, name("num_experts_per_tok"), " (", num_experts_per_tok,
          ") must be <= ", name("n_routed_experts"), " (", n_routed_experts, ")");
    check(n_routed_experts % n_group == 0, name("n_group"), " (", n_group, ") must divide ",
          name("n_routed_experts"), " (", n_routed_experts, ")");
    check(topk_group >= 1 && topk_group <= n_group, name("topk_group"), " (", topk_group, ") must be in [1, ",
          name("n_group"), " (", n_group, ")]");
    check(num_experts_per_tok <= topk_group * (n_routed_experts / n_group), name("num_experts_per_tok"), " (",
          num_experts_per_tok, ") must be <= ", name("topk_group"), " (", topk_group, ") x experts per group (",
          n_routed_experts / n_group, ")");
    check(scoring_func == "sigmoid" || scoring_func == "softmax", name("scoring_func"), " (\"", scoring_func,
          "\") must be \"sigmoid\" or \"softmax\"");
    check(topk_method == "noaux_tc" || topk_method == "greedy" || topk_method == "group_limited_greedy",
          name("topk_method"), " (\"", topk_method, "\") must be \"noaux_tc\", \"greedy\" or \"group_limited_greedy\"");
    check(routed_scaling_factor > 0, name("routed_scaling_factor"), " (", routed_scaling_factor, ") must be positive");
  }
  check(rms_norm_eps > 0, name("rms_norm_eps"), " (", rms_norm_eps, ") must be positive");
  check(rope_theta > 0, name("rope_theta"), " (", rope_theta, ") must be positive");
  if (rope_scaling) {
    check(rope_scaling->factor > 0, name("rope_scaling.factor"), " (", rope_scaling->factor, ") must be positive");
    check(rope_scaling->original_max_position_embeddings > 0, name("rope_scaling.original_max_position_embeddings"),
          " (", rope_scaling->original_max_position_embeddings, ") must be positive");
  }
  check(!tie_word_embeddings, name("tie_word_embeddings"),
        " (true): Kimi-K2 unties the embedding and lm_head; tied weights are not handled");
}

ModelConfig ModelConfig::from_hf_json(const Json& json, const std::string& source) {
  check(json.is_object(), source, ": expected a JSON object");
  FieldReader reader(json, source);
  ModelConfig c;
  reader.optional("model_type", c.model_type);
  reader.required("vocab_size", c.vocab_size);
  reader.required("hidden_size", c.hidden_size);
  reader.required("intermediate_size", c.intermediate_size);
  reader.required("moe_intermediate_size", c.moe_intermediate_size);
  reader.required("num_hidden_layers", c.num_hidden_layers);
  reader.required("num_attention_heads", c.num_attention_heads);
  c.num_key_value_heads = c.num_attention_heads;
  reader.optional("num_key_value_heads", c.num_key_value_heads);
  reader.required("n_routed_experts", c.n_routed_experts);
  reader.required("num_experts_per_tok", c.num_experts_per_tok);
  reader.optional("n_shared_experts", c.n_shared_experts);
  reader.optional("first_k_dense_replace", c.first_k_dense_replace);
  reader.optional("moe_layer_freq", c.moe_layer_freq);
  reader.required_nullable("q_lora_rank", c.q_lora_rank);
  reader.required("kv_lora_rank", c.kv_lora_rank);
  reader.required("qk_nope_head_dim", c.qk_nope_head_dim);
  reader.required("qk_rope_head_dim", c.qk_rope_head_dim);
  reader.required("v_head_dim", c.v_head_dim);
  reader.optional("rope_theta", c.rope_theta);
  reader.mark_seen("rope_scaling");
  if (json.contains("rope_scaling") && !json.at("rope_scaling").is_null()) {
    c.rope_scaling = read_rope_scaling(json.at("rope_scaling"), source);
  }
  reader.optional("max_position_embeddings", c.max_position_embeddings);
  reader.optional("scoring_func", c.scoring_func);
  reader.optional("topk_method", c.topk_method);
  reader.optional("n_group", c.n_group);
  reader.optional("topk_group", c.topk_group);
  reader.optional("norm_topk_prob", c.norm_topk_prob);
  reader.optional("routed_scaling_factor", c.routed_scaling_factor);
  reader.optional("rms_norm_eps", c.rms_norm_eps);
  reader.optional("tie_word_embeddings", c.tie_word_embeddings);
  reader.optional("bos_token_id", c.bos_token_id);
  reader.optional("eos_token_id", c.eos_token_id);
  reader.optional("aux_loss_alpha", c.aux_loss_alpha);
  reader.optional("seq_aux", c.seq_aux);
  reader.optional("num_nextn_predict_layers", c.num_nextn_predict_layers);
  reader.optional("initializer_range", c.initializer_range);
  bool attention_bias = false;
  reader.optional("attention_bias", attention_bias);
  check(!attention_bias, source, ": field \"attention_bias\" is true; Kimi-K2 attention has no biases");
  std::string hidden_act = "silu";
  reader.optional("hidden_act", hidden_act);
  check(hidden_act == "silu", source, ": field \"hidden_act\": expected \"silu\", got \"", hidden_act, "\"");
  // Written by the exporter itself; not architecture.
  for (const char* derived : {"architectures", "torch_dtype"}) reader.mark_seen(derived);
  c.extra_fields = reader.unseen();
  try {
    c.validate("");
  } catch (const Error& e) {
    fail(source, ": ", e.what());
  }
  return c;
}

ModelConfig ModelConfig::from_hf_file(const std::string& path) { return from_hf_json(read_json_file(path), path); }

Json ModelConfig::to_hf_json() const {
  Json j = extra_fields;
  j["architectures"] = Json::array({"DeepseekV3ForCausalLM"});
  j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["moe_intermediate_size"] = moe_intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["n_routed_experts"] = n_routed_experts;
  j["num_experts_per_tok"] = num_experts_per_tok;
  j["n_shared_experts"] = n_shared_experts;
  j["first_k_dense_replace"] = first_k_dense_replace;
  j["moe_layer_freq"] = moe_layer_freq;
  j["q_lora_rank"] = q_lora_rank ? Json(*q_lora_rank) : Json(nullptr);
  j["kv_lora_rank"] = kv_lora_rank;
  j["qk_nope_head_dim"] = qk_nope_head_dim;
  j["qk_rope_head_dim"] = qk_rope_head_dim;
  j["v_head_dim"] = v_head_dim;
  j["rope_theta"] = rope_theta;
  if (rope_scaling) {
    j["rope_scaling"] = {{"type", rope_scaling->type},
                         {"factor", rope_scaling->factor},
                         {"original_max_position_embeddings", rope_scaling->original_max_position_embeddings},
                         {"beta_fast", rope_scaling->beta_fast},
                         {"beta_slow", rope_scaling->beta_slow},
                         {"mscale", rope_scaling->mscale},
                         {"mscale_all_dim", rope_scaling->mscale_all_dim}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["max_position_embeddings"] = max_position_embeddings;
  j["scoring_func"] = scoring_func;
  j["topk_method"] = topk_method;
  j["n_group"] = n_group;
  j["topk_group"] = topk_group;
  j["norm_topk_prob"] = norm_topk_prob;
  j["routed_scaling_factor"] = routed_scaling_factor;
  j["rms_norm_eps"] = rms_norm_eps;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["bos_token_id"] = bos_token_id;
  j["eos_token_id"] = eos_token_id;
  j["aux_loss_alpha"] = aux_loss_alpha;
  j["seq_aux"] = seq_aux;
  j["num_nextn_predict_layers"] = num_nextn_predict_layers;
  j["initializer_range"] = initializer_range;
  j["hidden_act"] = "silu";
  j["attention_bias"] = false;
  return j;
}

ModelConfig kimi_k2_config() {
  ModelConfig c;
  c.vocab_size = 163840;
  c.hidden_size = 7168;
  c.intermediate_size = 18432;
  c.moe_intermediate_size = 2048;
  c.num_hidden_layers = 61;
  c.num_attention_heads = 64;
  c.num_key_value_heads = 64;
  c.n_routed_experts = 384;
  c.num_experts_per_tok = 8;
  c.n_shared_experts = 1;
  c.first_k_dense_replace = 1;
  c.moe_layer_freq = 1;
  c.q_lora_rank = 1536;
  c.kv_lora_rank = 512;
  c.qk_nope_head_dim = 128;
  c.qk_rope_head_dim = 64;
  c.v_head_dim = 128;
  c.rope_theta = 50000.0;
  c.rope_scaling = RopeScaling{"yarn", 32.0, 4096, 1.0, 1.0, 1.0, 1.0};
  c.max_position_embeddings = 131072;
  c.scoring_func = "sigmoid";
  c.topk_method = "noaux_tc";
  c.n_group = 1;
  c.topk_group = 1;
  c.norm_topk_prob = true;
  c.routed_scaling_factor = 2.827;
  c.rms_norm_eps = 1e-6;
  c.tie_word_embeddings = false;
  c.bos_token_id = 163584;
  c.eos_token_id = 163585;
  c.aux_loss_alpha = 0.001;
  c.seq_aux = true;
  c.num_nextn_predict_layers = 0;
  return c;
}

}  // namespace k2f::model
