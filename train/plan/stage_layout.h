// Which decoder layers each pipeline stage holds and how many parameters one GPU of that stage
// keeps. The layers come from parallel/pipeline_schedule.h, the cut the trainer runs: L + 2 items
// (embedding, layers, head) in pp x virtual_stages chunks, so the first and last chunks carry
// fewer layers (a K2 lm_head weighs about one MoE layer per GPU); chunk c runs on stage c % pp. Routed experts are split over ep; everything
// else is replicated over dp (ep lives inside dp, as in parallel/mesh.h).
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "parallel/mesh.h"

namespace k2f::train::plan {

struct StageLayout {
  int64_t stage = 0;
  std::vector<int64_t> layers;  // ascending
  bool has_embedding = false;
  bool has_head = false;        // final norm and lm_head
  // Per GPU of this stage:
  int64_t replicated_params = 0;  // trained, replicated over dp: embedding, attention, norms, dense MLP, router, shared experts
  int64_t expert_params = 0;      // trained, this GPU's routed experts (1/ep of the stage's)
  int64_t buffer_params = 0;      // router correction biases: stored, updated by the balancer, no gradient
  int64_t muon_params = 0;        // of the trained ones, those Muon updates (2-D matrices of hidden layers)
  int64_t adamw_params = 0;       // the rest: embedding, lm_head, norms
  int64_t trained_params() const { return replicated_params + expert_params; }
  int64_t stored_params() const { return trained_params() + buffer_params; }
};

// One entry per stage. `muon`: optim.name is muonclip (else every parameter is AdamW's).
std::vector<StageLayout> stage_layouts(const model::ModelConfig& config, const parallel::ParallelLayout& layout, bool muon);

}  // namespace k2f::train::plan
