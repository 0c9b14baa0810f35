#include "train/recipe.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "base/error.h"
#include "model/kimi_model.h"
#include "quant/lora.h"
#include "quant/qat_targets.h"
#include "train/rl/rl_options.h"
#include "train/toml_text.h"

namespace k2f::train {
namespace {

// The [model] defaults are the published Kimi-K2 configuration: an empty [model] is the 1T model.
std::vector<KeySpec> model_keys() {
  const auto k2 = model::kimi_k2_config();
  const auto& yarn = *k2.rope_scaling;
  return {
      {"model.hf_config", KeyType::String, "", "take the architecture from this config.json instead"},
      {"model.vocab_size", KeyType::Int, k2.vocab_size, "vocabulary size"},
      {"model.hidden_size", KeyType::Int, k2.hidden_size, "model width D"},
      {"model.intermediate_size", KeyType::Int, k2.intermediate_size, "dense MLP width"},
      {"model.moe_intermediate_size", KeyType::Int, k2.moe_intermediate_size, "routed/shared expert width"},
      {"model.num_hidden_layers", KeyType::Int, k2.num_hidden_layers, "decoder layers"},
      {"model.num_attention_heads", KeyType::Int, k2.num_attention_heads, "attention heads"},
      {"model.num_key_value_heads", KeyType::Int, 0, "0: equal to num_attention_heads (MLA)"},
      {"model.n_routed_experts", KeyType::Int, k2.n_routed_experts, "routed experts per MoE layer"},
      {"model.num_experts_per_tok", KeyType::Int, k2.num_experts_per_tok, "experts per token (top-k)"},
      {"model.n_shared_experts", KeyType::Int, k2.n_shared_experts, "shared experts"},
      {"model.first_k_dense_replace", KeyType::Int, k2.first_k_dense_replace, "leading dense layers"},
      {"model.moe_layer_freq", KeyType::Int, k2.moe_layer_freq, "MoE every n-th layer"},
      {"model.q_lora_rank", KeyType::Int, *k2.q_lora_rank, "query bottleneck rank; 0: plain q_proj"},
      {"model.kv_lora_rank", KeyType::Int, k2.kv_lora_rank, "compressed KV latent rank"},
      {"model.qk_nope_head_dim", KeyType::Int, k2.qk_nope_head_dim, "per-head non-rotary q/k dim"},
      {"model.qk_rope_head_dim", KeyType::Int, k2.qk_rope_head_dim, "per-head rotary q/k dim"},
      {"model.v_head_dim", KeyType::Int, k2.v_head_dim, "per-head value dim"},
      {"model.rope_theta", KeyType::Float, k2.rope_theta, "RoPE base"},
      {"model.max_position_embeddings", KeyType::Int, k2.max_position_embeddings, "longest context"},
      {"model.scoring_func", KeyType::String, k2.scoring_func, "router scores: sigmoid or softmax"},
      {"model.topk_method", KeyType::String, k2.topk_method, "noaux_tc, greedy or group_limited_greedy"},
      {"model.n_group", KeyType::Int, k2.n_group, "expert groups"},
      {"model.topk_group", KeyType::Int, k2.topk_group, "groups kept per token"},
      {"model.norm_topk_prob", KeyType::Bool, k2.norm_topk_prob, "normalise top-k weights"},
      {"model.routed_scaling_factor", KeyType::Float, k2.routed_scaling_factor, "routed output scale"},
      {"model.rms_norm_eps", KeyType::Float, k2.rms_norm_eps, "RMSNorm epsilon"},
      {"model.bos_token_id", KeyType::Int, k2.bos_token_id, "begin-of-sequence id"},
      {"model.eos_token_id", KeyType::Int, k2.eos_token_id, "end-of-sequence id"},
      {"model.aux_loss_alpha", KeyType::Float, k2.aux_loss_alpha, "sequence-wise aux loss weight"},
      {"model.seq_aux", KeyType::Bool, k2.seq_aux, "sequence-wise aux loss on"},
      {"model.initializer_range", KeyType::Float, k2.initializer_range, "init std"},
      {"model.rope_scaling.type", KeyType::String, "yarn", "yarn or none"},
      {"model.rope_scaling.factor", KeyType::Float, yarn.factor, "YaRN context factor"},
      {"model.rope_scaling.original_max_position_embeddings", KeyType::Int, yarn.original_max_position_embeddings,
       "pretraining context L0"},
      {"model.rope_scaling.beta_fast", KeyType::Float, yarn.beta_fast, "YaRN beta_fast"},
      {"model.rope_scaling.beta_slow", KeyType::Float, yarn.beta_slow, "YaRN beta_slow"},
      {"model.rope_scaling.mscale", KeyType::Float, yarn.mscale, "YaRN mscale"},
      {"model.rope_scaling.mscale_all_dim", KeyType::Float, yarn.mscale_all_dim, "YaRN mscale_all_dim"},
  };
}

std::vector<KeySpec> train_keys() {
  return {
      {"train.run_dir", KeyType::String, "runs/default", "directory for checkpoints, metrics, resolved recipe"},
      {"train.seed", KeyType::Int, 1234, "seed of initialisation and data order"},
      {"train.dtype", KeyType::String, "bf16", "compute dtype: bf16 (fp32 masters) or fp32"},
      {"train.device", KeyType::String, "cpu",
       "cpu, cuda or cuda:N (under mpirun, cuda means the GPU of the local rank)"},
      {"train.steps", KeyType::Int, 100, "optimizer steps"},
      {"train.seq_len", KeyType::Int, 512, "tokens per sequence"},
      {"train.global_batch_size", KeyType::Int, 8, "sequences per optimizer step, over all ranks"},
      {"train.micro_batch_size", KeyType::Int, 1, "sequences per forward/backward"},
      {"train.recompute", KeyType::Bool, false, "recompute each layer's activations in backward"},
      {"train.grad_clip", KeyType::Float, 1.0, "global gradient-norm clip (0: off)"},
      {"train.init_from", KeyType::String, "", "HF directory or checkpoint directory to start from (\"\": seed)"},
      {"train.router_dtype", KeyType::String, "fp32",
       "router logits and scores: fp32, or fp64 (no top-k tie can flip between parallel layouts)"},
      {"train.max_bad_steps", KeyType::Int, 5,
       "consecutive steps with a non-finite loss or gradient (each skipped) before the run stops"},
      {"optim.name", KeyType::String, "muonclip", "muonclip or adamw"},
      {"optim.lr", KeyType::Float, 2e-4, "peak learning rate"},
      {"optim.weight_decay", KeyType::Float, 0.1, "decoupled weight decay"},
      {"optim.qk_clip_tau", KeyType::Float, 100.0, "QK-Clip threshold (0: off)"},
      {"optim.momentum", KeyType::Float, 0.95, "Muon momentum"},
      {"optim.nesterov", KeyType::Bool, true, "Muon Nesterov momentum"},
      {"optim.muon_update_scale", KeyType::Float, 0.2, "Muon update RMS scale (x sqrt(max(rows, cols)))"},
      {"optim.newton_schulz_dtype", KeyType::String, "bf16", "Newton-Schulz dtype: bf16 or fp32"},
      {"optim.beta1", KeyType::Float, 0.9, "AdamW beta1"},
      {"optim.beta2", KeyType::Float, 0.95, "AdamW beta2"},
      {"optim.eps", KeyType::Float, 1e-8, "AdamW epsilon"},
      {"optim.adamw_pattern", KeyType::String, "", "regex of HF names forced to AdamW under muonclip"},
      {"schedule.name", KeyType::String, "wsd", "wsd, cosine or constant"},
      {"schedule.warmup_steps", KeyType::Int, 0, "linear warm-up steps"},
      {"schedule.decay_steps", KeyType::Int, 0, "wsd: steps of the final decay"},
      {"schedule.decay_shape", KeyType::String, "cosine", "wsd decay: cosine or linear"},
      {"schedule.min_lr", KeyType::Float, 0.0, "learning rate at the end of decay"},
      {"checkpoint.interval", KeyType::Int, 100, "steps between checkpoints (0: only at the end)"},
      {"checkpoint.keep", KeyType::Int, 2, "checkpoints kept"},
      {"data.paths", KeyType::StringList, Json::array(), "HDF5 token stores"},
      {"data.weights", KeyType::FloatList, Json::array(), "mixing weights (empty: by size)"},
      {"data.tokenizer", KeyType::String, "", "tokenizer directory the stores must have been built with (\"\": unchecked)"},
      {"data.mask_document_boundaries", KeyType::Bool, false, "attend only within documents"},
      {"data.prefetch", KeyType::Int, 2, "batches prefetched in the background"},
      {"balance.bias_update_rate", KeyType::Float, 1e-3, "aux-loss-free router bias step (0: off)"},
      {"balance.aux_loss_alpha", KeyType::Float, 0.0, "sequence-wise auxiliary loss weight (0: off)"},
      {"quant.qat", KeyType::Bool, false, "INT4 quantisation-aware training of the quant.targets linears"},
      {"quant.group_size", KeyType::Int, 32, "INT4 group size along the input dim"},
      {"quant.grid", KeyType::String, "k2", "INT4 code grid: k2 (absmax/7, -7..7) or minmax (absmax/7.5, -8..7)"},
      {"quant.targets", KeyType::StringList, Json(quant::QatTargets{}.targets), "compressed-tensors targets"},
      {"quant.ignore", KeyType::StringList, Json(quant::QatTargets{}.ignore),
       "compressed-tensors ignore list (default K2 Thinking's: routed experts only)"},
      {"lora.rank", KeyType::Int, 0, "LoRA adapter rank r (0: no adapters, every weight trains)"},
      {"lora.alpha", KeyType::Float, 16.0, "LoRA alpha: the adapter's output is scaled by alpha / r"},
      {"lora.dropout", KeyType::Float, 0.0, "dropout on the adapters' input while training"},
      {"lora.rslora", KeyType::Bool, false, "rank-stabilised scale alpha / sqrt(r)"},
      {"lora.targets", KeyType::StringList, Json(quant::LoraOptions{}.modules.targets),
       "Linear modules adapted (quant.targets' patterns over HF module paths)"},
      {"lora.ignore", KeyType::StringList, Json(quant::LoraOptions{}.modules.ignore), "Linear modules never adapted"},
      {"lora.optimizer", KeyType::String, "adamw", "the adapters' update rule: adamw or muon (optim.* settings)"},
      {"lora.quantized_merge", KeyType::Bool, false,
       "train against round(W + s B A) as the merged export stores it (INT4 where the base is INT4, else bf16)"},
      {"parallel.pp", KeyType::Int, 1, "pipeline stages (world = pp x dp)"},
      {"parallel.dp", KeyType::Int, 0, "data-parallel ranks (0: number of ranks / parallel.pp)"},
      {"parallel.ep", KeyType::Int, 1, "expert-parallel ranks inside dp: split the routed experts; divides parallel.dp"},
      {"parallel.virtual_stages", KeyType::Int, 1, "model chunks per pipeline rank (interleaved schedule)"},
      {"parallel.schedule", KeyType::String, "1f1b", "pipeline schedule: gpipe, 1f1b or interleaved"},
      {"parallel.zero1", KeyType::Bool, false, "ZeRO-1: shard optimizer state over the ranks replicating each parameter"},
      {"parallel.timeout_s", KeyType::Float, 300.0, "timeout of the rendezvous and of every collective"},
      {"parallel.backend", KeyType::String, "auto",
       "process groups of the mesh: auto (nccl when train.device is cuda, else gloo), gloo or nccl"},
      {"debug.nan_at_step", KeyType::Int, 0, "tests only: make the loss NaN from this 1-based step (0: never)"},
      {"debug.nan_steps", KeyType::Int, 1, "tests only: for this many consecutive steps"},
      {"debug.fail_at_step", KeyType::Int, 0, "tests only: throw an error at the start of this 1-based step (0: never)"},
      {"debug.fail_rank", KeyType::Int, 0, "tests only: the rank that throws at debug.fail_at_step"},
      {"log.tensorboard", KeyType::Bool, true, "write TensorBoard event files"},
      {"log.peak_tflops", KeyType::Float, 0.0, "peak for MFU (0: measure the bf16 GEMM rate at start)"},
      // [cluster]: the machines `k2forge plan` (and the plan check of `k2forge train`) sizes the
      // run for; a recipe without any cluster key has no plan check. 0 / "": the preset's value.
      {"cluster.preset", KeyType::String, "", "h800, h100, h200 or b200 (\"\": give every value below)"},
      {"cluster.gpus_per_node", KeyType::Int, 0, "GPUs per node"},
      {"cluster.nodes", KeyType::Int, 0, "nodes"},
      {"cluster.memory_gib", KeyType::Float, 0.0, "memory per GPU, GiB"},
      {"cluster.bf16_tflops", KeyType::Float, 0.0, "dense bf16 peak per GPU, TFLOP/s"},
      {"cluster.intra_node_gbps", KeyType::Float, 0.0, "GPU-to-GPU bandwidth inside a node, per GPU and direction, Gbit/s"},
      {"cluster.inter_node_gbps", KeyType::Float, 0.0, "network bandwidth between nodes, per GPU and direction, Gbit/s"},
      {"cluster.gemm_efficiency", KeyType::Float, 0.0, "fraction of the bf16 peak the model's matmuls reach"},
  };
}

const char* type_name(KeyType type) {
  switch (type) {
    case KeyType::Int: return "an integer";
    case KeyType::Float: return "a number";
    case KeyType::Bool: return "true or false";
    case KeyType::String: return "a string";
    case KeyType::StringList: return "an array of strings";
    case KeyType::FloatList: return "an array of numbers";
  }
  return "?";
}

const KeySpec* find_spec(const std::string& path) {
  for (const auto& spec : recipe_schema())
    if (spec.path == path) return &spec;
  return nullptr;
}

std::string section_of(const std::string& path) { return path.substr(0, path.rfind('.')); }
std::string leaf_of(const std::string& path) { return path.substr(path.rfind('.') + 1); }

// "unknown key "hiden_size" in section [model]; did you mean "hidden_size"?"
[[noreturn]] void unknown_key(const std::string& origin, const std::string& path) {
  const std::string section = section_of(path), leaf = leaf_of(path);
  std::set<std::string> sections;
  const KeySpec* closest = nullptr;
  size_t best = std::string::npos;
  for (const auto& spec : recipe_schema()) {
    sections.insert(section_of(spec.path));
    if (section_of(spec.path) != section) continue;
    const size_t d = edit_distance(leaf, leaf_of(spec.path));
    if (d < best) best = d, closest = &spec;
  }
  std::ostringstream message;
  if (!sections.count(section)) {
    message << origin << ": unknown section [" << section << "] (key \"" << leaf << "\"); known sections:";
    for (const auto& s : sections) message << " [" << s << "]";
    fail(message.str());
  }
  message << origin << ": unknown key \"" << leaf << "\" in section [" << section << "]";
  if (closest != nullptr) message << "; did you mean \"" << leaf_of(closest->path) << "\"?";
  fail(message.str());
}

Json coerce(const KeySpec& spec, const Json& value, const std::string& origin) {
  auto all_of = [&](auto predicate) {
    return value.is_array() && std::all_of(value.begin(), value.end(), predicate);
  };
  const bool ok = (spec.type == KeyType::Int && value.is_number_integer()) ||
                  (spec.type == KeyType::Float && value.is_number()) ||
                  (spec.type == KeyType::Bool && value.is_boolean()) ||
                  (spec.type == KeyType::String && value.is_string()) ||
                  (spec.type == KeyType::StringList && all_of([](const Json& v) { return v.is_string(); })) ||
                  (spec.type == KeyType::FloatList && all_of([](const Json& v) { return v.is_number(); }));
  check(ok, origin, ": ", spec.path, " must be ", type_name(spec.type), ", got ", value.dump());
  if (spec.type == KeyType::Float) return value.get<double>();
  if (spec.type == KeyType::FloatList) return value.get<std::vector<double>>();
  return value;
}

Json toml_to_json(const toml::node& node, const TomlSafeText& text, const std::string& origin,
                  const std::string& path) {
  if (auto array = node.as_array()) {
    Json items = Json::array();
    for (size_t i = 0; i < array->size(); ++i) items.push_back(toml_to_json(*array->get(i), text, origin, path));
    return items;
  }
  if (auto v = node.as_integer()) return v->get();
  if (auto v = node.as_floating_point()) return v->get();
  if (auto v = node.as_boolean()) return v->get();
  if (auto v = node.as_string()) return text.restore(v->get());
  fail(origin, ": ", path, " has an unsupported TOML type (expected a number, boolean or string)");
}

void flatten(const toml::table& table, const TomlSafeText& text, const std::string& prefix,
             const std::string& origin, std::vector<std::pair<std::string, Json>>& out) {
  for (auto&& [key, node] : table) {
    const std::string name = text.restore(key.str());
    const std::string path = prefix.empty() ? name : prefix + "." + name;
    if (const auto* sub = node.as_table()) {
      flatten(*sub, text, path, origin, out);
    } else {
      check(!prefix.empty(), origin, ": key \"", path, "\" must be inside a section such as [model]");
      out.emplace_back(path, toml_to_json(node, text, origin, path));
    }
  }
}

Json parse_override_value(const KeySpec& spec, const std::string& text, const std::string& origin) {
  try {
    size_t used = 0;
    switch (spec.type) {
      case KeyType::Int: {
        const long long v = std::stoll(text, &used);
        if (used == text.size()) return v;
        break;
      }
      case KeyType::Float: {
        const double v = std::stod(text, &used);
        if (used == text.size()) return v;
        break;
      }
      case KeyType::Bool:
        if (text == "true") return true;
        if (text == "false") return false;
        break;
      case KeyType::String:
        if (text.size() >= 2 && text.front() == '"' && text.back() == '"') return text.substr(1, text.size() - 2);
        return text;
      case KeyType::StringList:
      case KeyType::FloatList: {  // comma-separated
        Json items = Json::array();
        std::stringstream parts(text);
        std::string part;
        KeySpec item_spec = spec;
        item_spec.type = spec.type == KeyType::StringList ? KeyType::String : KeyType::Float;
        while (std::getline(parts, part, ',')) items.push_back(parse_override_value(item_spec, part, origin));
        return items;
      }
    }
  } catch (const std::exception&) {
  }
  fail(origin, ": ", spec.path, " must be ", type_name(spec.type), ", got \"", text, "\"");
}

std::string toml_value(const Json& value) {
  if (value.is_array()) {
    std::string out = "[";
    for (size_t i = 0; i < value.size(); ++i) out += (i ? ", " : "") + toml_value(value[i]);
    return out + "]";
  }
  if (value.is_string()) return Json(value.get<std::string>()).dump();  // JSON string escapes are valid TOML
  if (value.is_number_float()) {
    std::ostringstream out;
    out.precision(17);
    out << value.get<double>();
    std::string s = out.str();
    if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
    return s;
  }
  return value.dump();
}

}  // namespace

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

const std::vector<KeySpec>& recipe_schema() {
  static const std::vector<KeySpec> schema = [] {
    std::vector<KeySpec> all = model_keys();
    for (auto& spec : train_keys()) all.push_back(spec);
    for (auto& spec : rl::rl_recipe_keys()) all.push_back(spec);  // [rl]: train/rl/rl_options.cpp
    return all;
  }();
  return schema;
}

void Recipe::set(const std::string& key, const Json& value, const std::string& origin) {
  const KeySpec* spec = find_spec(key);
  if (spec == nullptr) unknown_key(origin, key);
  values_[key] = coerce(*spec, value, origin);
  if (std::find(explicitly_set_.begin(), explicitly_set_.end(), key) == explicitly_set_.end())
    explicitly_set_.push_back(key);
}

Recipe Recipe::load(const std::string& path, const std::vector<std::string>& overrides) {
  Recipe recipe;
  recipe.source_ = path;
  for (const auto& spec : recipe_schema()) recipe.values_[spec.path] = spec.default_value;
  if (!path.empty()) {
    check(std::filesystem::is_regular_file(path), path, ": recipe file not found");
    std::ifstream in(path, std::ios::binary);
    const TomlSafeText text(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
    toml::table table;
    try {
      table = toml::parse(text.text(), path);
    } catch (const toml::parse_error& e) {
      fail(path, ":", e.source().begin.line, ":", e.source().begin.column,
           ": invalid TOML: ", text.restore(e.description()));
    }
    std::vector<std::pair<std::string, Json>> entries;
    flatten(table, text, "", path, entries);
    for (const auto& [key, value] : entries) recipe.set(key, value, path);
  }
  for (const auto& item : overrides) {
    const auto eq = item.find('=');
    check(eq != std::string::npos && eq > 0, "--set ", item, ": expected section.key=value");
    const std::string key = item.substr(0, eq);
    const KeySpec* spec = find_spec(key);
    if (spec == nullptr) unknown_key("--set " + item, key);
    recipe.set(key, parse_override_value(*spec, item.substr(eq + 1), "--set " + item), "--set " + item);
  }
  model_config_from_recipe(recipe);  // cross-field validation before anything runs
  model::parse_compute_dtype(recipe.get_string("train.dtype"), "train.dtype");
  check(recipe.get_int("train.seq_len") > 0, "train.seq_len (", recipe.get_int("train.seq_len"), ") must be positive");
  check(recipe.get_int("train.micro_batch_size") > 0, "train.micro_batch_size (",
        recipe.get_int("train.micro_batch_size"), ") must be positive");
  return recipe;
}

const Json& Recipe::value(const std::string& key) const {
  check(values_.contains(key), "recipe: internal lookup of undeclared key ", key);
  return values_.at(key);
}

int64_t Recipe::get_int(const std::string& key) const { return value(key).get<int64_t>(); }
double Recipe::get_float(const std::string& key) const { return value(key).get<double>(); }
bool Recipe::get_bool(const std::string& key) const { return value(key).get<bool>(); }
std::string Recipe::get_string(const std::string& key) const { return value(key).get<std::string>(); }
std::vector<std::string> Recipe::get_strings(const std::string& key) const {
  return value(key).get<std::vector<std::string>>();
}
std::vector<double> Recipe::get_floats(const std::string& key) const { return value(key).get<std::vector<double>>(); }
bool Recipe::was_set(const std::string& key) const {
  return std::find(explicitly_set_.begin(), explicitly_set_.end(), key) != explicitly_set_.end();
}

std::string Recipe::to_toml() const {
  std::ostringstream out;
  out << "# resolved k2forge recipe" << (source_.empty() ? "" : " (from " + source_ + ")")
      << "; every key, defaults included\n";
  std::string current;
  for (const auto& spec : recipe_schema()) {
    const std::string section = section_of(spec.path);
    if (section != current) {
      out << "\n[" << section << "]\n";
      current = section;
    }
    out << leaf_of(spec.path) << " = " << toml_value(values_.at(spec.path)) << "\n";
  }
  return out.str();
}

void Recipe::write_resolved(const std::string& run_dir) const {
  std::filesystem::create_directories(run_dir);
  write_text_file_atomic((std::filesystem::path(run_dir) / "recipe.resolved.toml").string(), to_toml());
}

model::ModelConfig model_config_from_recipe(const Recipe& r) {
  const std::string hf_config = r.get_string("model.hf_config");
  if (!hf_config.empty()) {
    for (const auto& spec : recipe_schema()) {
      check(spec.path.rfind("model.", 0) != 0 || spec.path == "model.hf_config" || !r.was_set(spec.path),
            spec.path, " is set together with model.hf_config (\"", hf_config,
            "\"): the architecture comes from one place; remove one of them");
    }
    return model::ModelConfig::from_hf_file(hf_config);
  }
  model::ModelConfig c;
  c.vocab_size = r.get_int("model.vocab_size");
  c.hidden_size = r.get_int("model.hidden_size");
  c.intermediate_size = r.get_int("model.intermediate_size");
  c.moe_intermediate_size = r.get_int("model.moe_intermediate_size");
  c.num_hidden_layers = r.get_int("model.num_hidden_layers");
  c.num_attention_heads = r.get_int("model.num_attention_heads");
  const int64_t kv_heads = r.get_int("model.num_key_value_heads");
  c.num_key_value_heads = kv_heads == 0 ? c.num_attention_heads : kv_heads;
  c.n_routed_experts = r.get_int("model.n_routed_experts");
  c.num_experts_per_tok = r.get_int("model.num_experts_per_tok");
  c.n_shared_experts = r.get_int("model.n_shared_experts");
  c.first_k_dense_replace = r.get_int("model.first_k_dense_replace");
  c.moe_layer_freq = r.get_int("model.moe_layer_freq");
  const int64_t q_lora = r.get_int("model.q_lora_rank");
  if (q_lora != 0) c.q_lora_rank = q_lora;
  c.kv_lora_rank = r.get_int("model.kv_lora_rank");
  c.qk_nope_head_dim = r.get_int("model.qk_nope_head_dim");
  c.qk_rope_head_dim = r.get_int("model.qk_rope_head_dim");
  c.v_head_dim = r.get_int("model.v_head_dim");
  c.rope_theta = r.get_float("model.rope_theta");
  c.max_position_embeddings = r.get_int("model.max_position_embeddings");
  c.scoring_func = r.get_string("model.scoring_func");
  c.topk_method = r.get_string("model.topk_method");
  c.n_group = r.get_int("model.n_group");
  c.topk_group = r.get_int("model.topk_group");
  c.norm_topk_prob = r.get_bool("model.norm_topk_prob");
  c.routed_scaling_factor = r.get_float("model.routed_scaling_factor");
  c.rms_norm_eps = r.get_float("model.rms_norm_eps");
  c.bos_token_id = r.get_int("model.bos_token_id");
  c.eos_token_id = r.get_int("model.eos_token_id");
  c.aux_loss_alpha = r.get_float("model.aux_loss_alpha");
  c.seq_aux = r.get_bool("model.seq_aux");
  c.initializer_range = r.get_float("model.initializer_range");
  const std::string scaling = r.get_string("model.rope_scaling.type");
  check(scaling == "yarn" || scaling == "none", "model.rope_scaling.type (\"", scaling,
        "\") must be \"yarn\" or \"none\"");
  if (scaling == "yarn") {
    model::RopeScaling s;
    s.factor = r.get_float("model.rope_scaling.factor");
    s.original_max_position_embeddings = r.get_int("model.rope_scaling.original_max_position_embeddings");
    s.beta_fast = r.get_float("model.rope_scaling.beta_fast");
    s.beta_slow = r.get_float("model.rope_scaling.beta_slow");
    s.mscale = r.get_float("model.rope_scaling.mscale");
    s.mscale_all_dim = r.get_float("model.rope_scaling.mscale_all_dim");
    c.rope_scaling = s;
  }
  c.validate("model");
  return c;
}

}  // namespace k2f::train
