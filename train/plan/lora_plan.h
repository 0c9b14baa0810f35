// What LoRA fine-tuning keeps per GPU of a pipeline stage (quant/lora.h, the trainer's LoRA mode):
// the frozen base as the trainer holds it (routed experts packed INT4 with a bf16 scale per group
// when the base ships them so, every other weight in the compute dtype; no gradients, masters or
// optimizer state for any of it), and the adapters, A [r, in] and B [out, r] of every Linear the
// targets select, in fp32 with their gradients and optimizer state. The Linear shapes are the
// model's own (model/layers.h names), so the count equals apply_lora's.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/config.h"
#include "quant/qat_targets.h"
#include "train/plan/stage_layout.h"

namespace k2f::train::plan {

struct LoraPlan {
  int64_t rank = 0;
  quant::QatTargets modules;
  bool int4_experts = true;     // the base stores the routed experts INT4 (K2 Thinking), else bf16
  int64_t group_size = 32;      // of the INT4 experts' scales
  bool muon = false;            // lora.optimizer muon (momentum only), else AdamW (two moments)
  std::string base_note;        // how int4_experts was decided, for the table
  // Per decoder layer, the summed (in + out) of the selected replicated linears and of the
  // selected routed experts (all of them, before ep); the same for lm_head. Filled by select().
  std::vector<std::pair<int64_t, int64_t>> layer_widths;
  int64_t head_width = 0;
  // Matches `modules` against every Linear of `config` once (a K2 layer has 1,160 of them).
  void select(const model::ModelConfig& config);
};

// One Linear of the model: its HF module path and [out, in].
struct LinearShape {
  std::string path;
  int64_t out = 0, in = 0;
};
// Every Linear of decoder layer `layer` (attention, dense MLP or shared and all routed experts).
std::vector<LinearShape> layer_linears(const model::ModelConfig& config, int64_t layer);

// Adapter parameters (rank x the selected widths; `lora` must have been select()ed) one GPU of `stage` holds: those on replicated linears, and those on its
// routed experts (the selected experts' adapters divided over ep, as the experts are).
struct AdapterParams {
  int64_t replicated = 0;
  int64_t experts = 0;
  int64_t total() const { return replicated + experts; }
};
AdapterParams adapter_params(const model::ModelConfig& config, const StageLayout& stage, int64_t ep, const LoraPlan& lora);

// Bytes per parameter of the frozen routed experts: 0.5 + 2 / group_size when INT4, else `dtype_bytes`.
double frozen_expert_bytes_per_param(const LoraPlan& lora, double dtype_bytes);

}  // namespace k2f::train::plan
