// The forward and backward passes of one optimizer step on this rank, in the order of its pipeline
// schedule (parallel/pipeline_schedule.h). Each pass runs one of the stage's model chunks on one
// micro-batch: the first chunk embeds the tokens, the others receive the previous chunk's hidden
// states; the last computes logits and the loss, the others send their output on. A backward
// pass receives the gradient of its output (or starts from the loss), backpropagates through its
// chunk, and sends its input's gradient back. Without pipeline parallelism the whole model is one
// chunk and the schedule is forward, backward per micro-batch: the plain training loop.
// Gradients accumulate in the parameters' .grad; the model never communicates.
#pragma once

#include <map>
#include <utility>
#include <vector>

#include "data/token_loader.h"
#include "model/kimi_model.h"
#include "parallel/comm.h"
#include "parallel/pipeline_schedule.h"
#include "train/load_balance.h"

namespace k2f::train {

// How a step turns its micro-batches into a loss (the same on every rank).
struct StepLoss {
  int64_t seq_len = 0;
  double inverse_tokens = 0;  // 1 / the step's global count of target tokens
  double aux_scale = 0;       // sequence-wise balance loss weight / global batch size (0: off)
  bool inject_nan = false;    // debug.nan_at_step: the loss becomes NaN
};

struct StepPasses {
  double nll_sum = 0;   // this rank's micro-batches, on the stage holding the head (0 elsewhere)
  double aux_loss = 0;  // this rank's layers
  double forward_seconds = 0;
  double backward_seconds = 0;
  double receive_seconds = 0;  // blocked on another stage: transfers and the pipeline bubble
};

class PipelineExecutor {
 public:
  // `pp_group`: the ranks of this dp index over every stage (group rank = stage); null for pp 1.
  // `loads`: accumulates each MoE layer's expert loads after every forward.
  PipelineExecutor(model::KimiForCausalLM model, const parallel::ParallelLayout& layout, int64_t stage,
                   parallel::Group pp_group, torch::Device device, ExpertLoadTracker& loads);

  StepPasses run(const std::vector<data::TokenBatch>& micro_batches, const StepLoss& loss);

 private:
  struct InFlight {
    torch::Tensor input;   // the received hidden states (a leaf), undefined on the first chunk
    torch::Tensor output;  // the chunk's output, or the loss on the last chunk
    torch::Tensor aux;     // this chunk's balance loss, undefined when off or no MoE layer
  };
  void forward(const parallel::PipelinePass& pass, const data::TokenBatch& batch, const StepLoss& loss, StepPasses& out);
  void backward(const parallel::PipelinePass& pass, StepPasses& out);
  // The hidden states [B,T,D] of the chunk before `chunk` (received), or of the chunk after (its gradient).
  torch::Tensor receive_from(int64_t chunk, int64_t micro_batch, bool gradient, StepPasses& out);
  void send_to(int64_t chunk, int64_t micro_batch, bool gradient, const torch::Tensor& tensor);
  int tag(int64_t micro_batch, int64_t chunk, bool gradient) const;

  model::KimiForCausalLM model_;
  parallel::ParallelLayout layout_;
  int64_t stage_;
  std::vector<parallel::PipelineChunk> chunks_;  // by virtual stage
  parallel::Group pp_group_;
  torch::Device device_;
  ExpertLoadTracker& loads_;
  std::vector<int64_t> activation_shape_;  // [micro batch, T, D] of the step being run
  std::map<std::pair<int64_t, int64_t>, InFlight> in_flight_;  // by (micro-batch, virtual stage)
  std::vector<c10::intrusive_ptr<c10d::Work>> sends_;
};

}  // namespace k2f::train
