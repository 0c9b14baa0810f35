#include "model/kimi_model.h"

#include <algorithm>

#include <torch/nn/init.h>

#include "base/error.h"

namespace k2f::model {

bool ModelPart::holds_layer(int64_t index) const {
  return !layers || std::binary_search(layers->begin(), layers->end(), index);
}

bool ModelPart::whole(int64_t num_layers) const {
  return embedding && head && (!layers || static_cast<int64_t>(layers->size()) == num_layers);
}

KimiModelImpl::KimiModelImpl(const ModelConfig& c, ExpertSlice experts, ModelPart held) : config(c), part(std::move(held)) {
  c.validate();
  if (part.layers) {
    check(std::is_sorted(part.layers->begin(), part.layers->end()), "ModelPart: layer indices must be ascending");
    for (int64_t i : *part.layers)
      check(i >= 0 && i < c.num_hidden_layers, "ModelPart: layer ", i, " outside [0, ", c.num_hidden_layers, ")");
  }
  if (part.embedding) embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", std::make_shared<torch::nn::Module>());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    if (!part.holds_layer(i)) continue;
    decoder_layers.push_back(DecoderLayer(c, i, experts));
    layers->register_module(std::to_string(i), decoder_layers.back());
  }
  if (part.head) norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

SequenceContext KimiModelImpl::sequence_context(const ForwardInputs& in) const {
  const int64_t B = in.tokens_BT.size(0), T = in.tokens_BT.size(1);
  const auto device = in.tokens_BT.device();
  auto positions_BT = in.positions_BT;
  if (!positions_BT.defined()) {
    positions_BT = torch::arange(T, torch::TensorOptions().dtype(torch::kInt64).device(device)).unsqueeze(0).expand({B, T});
  }
  return SequenceContext{rope_tables(config, positions_BT), causal_mask(B, T, in.segment_ids_BT, device)};
}

torch::Tensor KimiModelImpl::forward(const ForwardInputs& in, torch::ScalarType compute_dtype) {
  check(part.whole(config.num_hidden_layers), "KimiModel::forward needs the whole model; this one is a pipeline stage's part");
  const auto context = sequence_context(in);
  return norm->forward(run_layers(embed(in.tokens_BT, compute_dtype), context, 0, config.num_hidden_layers));
}

torch::Tensor KimiModelImpl::embed(const torch::Tensor& tokens_BT, torch::ScalarType compute_dtype) {
  check(!embed_tokens.is_empty(), "KimiModel::embed: this part holds no embedding (not the first pipeline stage)");
  return embed_tokens->forward(tokens_BT).to(compute_dtype);
}

torch::Tensor KimiModelImpl::run_layers(torch::Tensor h_BTD, const SequenceContext& context, int64_t first, int64_t end) {
  for (auto& layer : decoder_layers) {
    if (layer->layer_index < first || layer->layer_index >= end) continue;
    h_BTD = layer_runner ? layer_runner(layer, h_BTD, context) : layer->forward(h_BTD, context);
  }
  return h_BTD;
}

torch::Tensor KimiModelImpl::forward_cached(const torch::Tensor& tokens_BT, KvCache& cache,
                                           torch::ScalarType compute_dtype, LatentAttention form) {
  const int64_t B = tokens_BT.size(0), T = tokens_BT.size(1);
  check(B == cache.batch(), "model input: ", B, " rows for a KV cache of batch ", cache.batch());
  check(part.whole(config.num_hidden_layers), "KimiModel::forward_cached needs the whole model; this one is a pipeline stage's part");
  check(cache.num_layers() == static_cast<int64_t>(decoder_layers.size()), "KV cache has ", cache.num_layers(),
        " layers, the model ", decoder_layers.size());
  check(cache.dtype() == compute_dtype, "KV cache holds ", cache.dtype(), " but the model computes in ", compute_dtype);
  cache.check_room(T);
  const SequenceContext context{rope_tables(config, cache.next_positions(T)), cache.next_allowed(T)};
  auto h_BTD = embed_tokens->forward(tokens_BT).to(compute_dtype);
  for (auto& layer : decoder_layers) h_BTD = layer->forward_cached(h_BTD, context, cache, form);
  cache.advance(T);
  return norm->forward(h_BTD);
}

KimiForCausalLMImpl::KimiForCausalLMImpl(const ModelConfig& c, ExpertSlice experts, ModelPart part) {
  const bool head = part.head;
  model = register_module("model", KimiModel(c, experts, std::move(part)));
  if (head) lm_head = register_module("lm_head", Linear(c.hidden_size, c.vocab_size));
}

torch::Tensor KimiForCausalLMImpl::forward(const ForwardInputs& inputs) {
  check(inputs.tokens_BT.dim() == 2, "model input: expected token ids [batch, tokens], got ", inputs.tokens_BT.dim(),
        " dimensions");
  return lm_head->forward(model->forward(inputs, compute_dtype)).to(accumulate_dtype(compute_dtype));
}

torch::Tensor KimiForCausalLMImpl::head_logits(const torch::Tensor& h_BTD) {
  check(!lm_head.is_empty(), "KimiForCausalLM::head_logits: this part holds no head (not the last pipeline stage)");
  return lm_head->forward(model->norm->forward(h_BTD)).to(accumulate_dtype(h_BTD.scalar_type()));
}

torch::Tensor KimiForCausalLMImpl::forward_cached(const torch::Tensor& tokens_BT, KvCache& cache, LatentAttention form) {
  check(tokens_BT.dim() == 2, "model input: expected token ids [batch, tokens], got ", tokens_BT.dim(), " dimensions");
  return lm_head->forward(model->forward_cached(tokens_BT, cache, compute_dtype, form)).to(accumulate_dtype(compute_dtype));
}

KvCache KimiForCausalLMImpl::make_cache(int64_t batch, int64_t max_len) const {
  return KvCache(model->config, batch, max_len, compute_dtype, lm_head->weight.device());
}

uint64_t tensor_seed(uint64_t seed, const std::string& name) {
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : name) hash = (hash ^ c) * 1099511628211ull;
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * (hash | 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void init_weights(KimiForCausalLM& lm, uint64_t seed) {
  torch::NoGradGuard no_grad;
  const double std = lm->model->config.initializer_range;
  for (auto& [name, tensor] : named_state(*lm)) {
    // One generator per tensor: expert 12 gets the same values whether or not this process holds
    // the other experts (expert parallelism), and no tensor's values depend on another's shape.
    auto generator = at::detail::createCPUGenerator(tensor_seed(seed, name));
    const bool is_norm = name.find("norm") != std::string::npos;  // input/post/q_a/kv_a layernorms, model.norm
    if (name.find("e_score_correction_bias") != std::string::npos) {
      tensor.zero_();
    } else if (is_norm) {
      tensor.fill_(1.0);
    } else {
      auto values = at::normal(0.0, std, tensor.sizes(), generator, torch::TensorOptions().dtype(torch::kFloat32));
      tensor.copy_(values);
    }
  }
}

void set_router_fp64(KimiForCausalLM& lm, bool fp64) {
  for (auto& layer : lm->model->decoder_layers)
    if (layer->moe) layer->moe->gate->route_in_fp64 = fp64;
}

std::vector<std::pair<std::string, torch::Tensor>> named_state(const torch::nn::Module& m) {
  std::vector<std::pair<std::string, torch::Tensor>> state;
  for (const auto& item : m.named_parameters(/*recurse=*/true)) state.emplace_back(item.key(), item.value());
  for (const auto& item : m.named_buffers(/*recurse=*/true)) state.emplace_back(item.key(), item.value());
  return state;
}

torch::Tensor next_token_logprobs(const torch::Tensor& logits_BTV, const torch::Tensor& tokens_BT) {
  const int64_t T = tokens_BT.size(1);
  const auto wide = accumulate_dtype(logits_BTV.scalar_type());
  const auto logprobs_BTV = torch::log_softmax(logits_BTV.narrow(1, 0, T - 1).to(wide), -1);
  return logprobs_BTV.gather(2, tokens_BT.narrow(1, 1, T - 1).unsqueeze(-1)).squeeze(-1);
}

torch::ScalarType parse_compute_dtype(const std::string& name, const std::string& what) {
  if (name == "fp32" || name == "float32") return torch::kFloat32;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  if (name == "fp64" || name == "float64") return torch::kFloat64;
  fail(what, ": unknown dtype \"", name, "\" (expected fp32 or bf16)");
}

}  // namespace k2f::model
