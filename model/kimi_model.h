// The whole Kimi-K2 causal LM with HF module names: KimiForCausalLM = { model: KimiModel
// { embed_tokens, layers.{i}, norm }, lm_head }, so named_parameters() yields exactly the HF
// tensor names. Its public parts (embedding, layer list, final norm, head) are what pipeline
// stages are cut from: a ModelPart builds only some of them, under the same names. Weights are fp32 masters; `compute_dtype` picks fp32 or bf16 activations.
// forward_cached is the generation entry point: the next tokens of every row through a KvCache.
// Legend: B batch, T tokens, D hidden, V vocab.
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/pimpl.h>

#include "model/config.h"
#include "model/decoder_layer.h"

namespace k2f::model {

struct ForwardInputs {
  torch::Tensor tokens_BT;       // int64
  torch::Tensor positions_BT;    // optional: 0..T-1 per row when undefined
  torch::Tensor segment_ids_BT;  // optional: tokens attend only within equal ids (packed documents)
};

// The pieces of the model one process builds: a pipeline stage holds some decoder layers, the
// embedding only on the first stage, the final norm and lm_head only on the last. Names stay the
// full model's ("model.layers.7...." on whichever stage holds layer 7).
struct ModelPart {
  std::optional<std::vector<int64_t>> layers;  // ascending layer indices; nullopt: every layer
  bool embedding = true;
  bool head = true;  // model.norm and lm_head
  bool holds_layer(int64_t index) const;
  bool whole(int64_t num_layers) const;
};

// Runs one decoder layer; the default calls layer->forward. Training swaps in a runner that
// recomputes activations in the backward pass, without the model knowing.
using LayerRunner = std::function<torch::Tensor(DecoderLayer&, const torch::Tensor&, const SequenceContext&)>;

class KimiModelImpl : public torch::nn::Module {
 public:
  // `experts`: the routed experts of every MoE layer this process holds (default: all);
  // `part`: the layers and ends it holds (default: the whole model).
  explicit KimiModelImpl(const ModelConfig& config, ExpertSlice experts = {}, ModelPart part = {});
  // Final hidden states [B,T,D] in `compute_dtype`, after model.norm (whole models only).
  torch::Tensor forward(const ForwardInputs& inputs, torch::ScalarType compute_dtype);
  // The steps forward() is made of, for a pipeline stage that runs only its part:
  // the embedded tokens [B,T,D] in `compute_dtype`; the held layers with index in [first, end).
  torch::Tensor embed(const torch::Tensor& tokens_BT, torch::ScalarType compute_dtype);
  torch::Tensor run_layers(torch::Tensor h_BTD, const SequenceContext& context, int64_t first, int64_t end);
  // Rotary tables and mask for a batch (shared by every layer of one forward).
  SequenceContext sequence_context(const ForwardInputs& inputs) const;
  // Final hidden states [B,T,D] of the next T tokens of each row; their latents are appended to
  // `cache` (whose dtype must be `compute_dtype`), which then advances by T.
  torch::Tensor forward_cached(const torch::Tensor& tokens_BT, KvCache& cache, torch::ScalarType compute_dtype,
                               LatentAttention form);

  torch::nn::Embedding embed_tokens{nullptr};  // null off the first pipeline stage
  std::shared_ptr<torch::nn::Module> layers;   // children "0", "1", ...: the held layers under their indices
  RMSNorm norm{nullptr};                       // null off the last pipeline stage
  std::vector<DecoderLayer> decoder_layers;    // the held layers, typed, ascending
  ModelConfig config;
  ModelPart part;
  LayerRunner layer_runner;  // empty: plain forward
};
TORCH_MODULE(KimiModel);

class KimiForCausalLMImpl : public torch::nn::Module {
 public:
  explicit KimiForCausalLMImpl(const ModelConfig& config, ExpertSlice experts = {}, ModelPart part = {});
  // Logits [B,T,V] in fp32 (whole models only).
  torch::Tensor forward(const ForwardInputs& inputs);
  // Logits [B,T,V] in fp32 from the last layer's hidden states: model.norm then lm_head.
  torch::Tensor head_logits(const torch::Tensor& h_BTD);
  torch::Tensor forward(const torch::Tensor& tokens_BT) { return forward(ForwardInputs{tokens_BT, {}, {}}); }
  // Logits [B,T,V] in fp32 of the next T tokens of each row (a prompt: T > 1; a decode step: T = 1),
  // attending to everything already in `cache`. Equals the matching positions of forward() over
  // the whole sequence. No sampling here: see sampler.h.
  torch::Tensor forward_cached(const torch::Tensor& tokens_BT, KvCache& cache,
                               LatentAttention form = LatentAttention::kAbsorbed);
  // A cache for this model in its compute dtype, on its device.
  KvCache make_cache(int64_t batch, int64_t max_len) const;

  KimiModel model{nullptr};
  Linear lm_head{nullptr};  // null off the last pipeline stage
  torch::ScalarType compute_dtype = torch::kFloat32;
};
TORCH_MODULE(KimiForCausalLM);

// Normal(0, initializer_range) for every matrix, ones for norms, zeros for router biases;
// deterministic for a seed, each tensor drawn from its own generator seeded by (seed, HF name),
// so a model holding a slice of the experts gets exactly those experts' values.
void init_weights(KimiForCausalLM& model, uint64_t seed);

// A tensor's own seed from (seed, HF name): FNV-1a over the name, mixed with splitmix64.
uint64_t tensor_seed(uint64_t seed, const std::string& name);

// Every MoE router computes its logits and scores in fp64 (train.router_dtype = "fp64") or not.
void set_router_fp64(KimiForCausalLM& model, bool fp64);

// Parameters and buffers under their HF names, in module order.
std::vector<std::pair<std::string, torch::Tensor>> named_state(const torch::nn::Module& model);

// log p(tokens[t+1] | tokens[..t]) for each row: [B, T-1] fp32, from logits [B,T,V].
torch::Tensor next_token_logprobs(const torch::Tensor& logits_BTV, const torch::Tensor& tokens_BT);

// Parses "fp32"/"float32" or "bf16"/"bfloat16"; `what` names the option in errors.
torch::ScalarType parse_compute_dtype(const std::string& name, const std::string& what);

}  // namespace k2f::model
