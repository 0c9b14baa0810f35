#include "train/pipeline_executor.h"

#include <cmath>
#include <limits>

#include <torch/csrc/autograd/autograd.h>

#include "base/device.h"
#include "base/error.h"
#include "base/stopwatch.h"
#include "train/losses.h"

namespace k2f::train {

namespace {

// The batch's tensors on the model's device (the loader reads into host memory).
data::TokenBatch batch_on_device(const data::TokenBatch& batch, const torch::Device& device) {
  if (device.is_cpu()) return batch;
  data::TokenBatch moved = batch;
  const auto move = [&](torch::Tensor& t) {
    if (t.defined()) t = t.to(device, /*non_blocking=*/true);
  };
  move(moved.tokens_BT);
  move(moved.positions_BT);
  move(moved.segment_ids_BT);
  move(moved.loss_mask_BT);
  return moved;
}

}  // namespace

PipelineExecutor::PipelineExecutor(model::KimiForCausalLM model, const parallel::ParallelLayout& layout, int64_t stage,
                                   parallel::Group pp_group, torch::Device device, ExpertLoadTracker& loads)
    : model_(std::move(model)),
      layout_(layout),
      stage_(stage),
      chunks_(parallel::stage_chunks(layout, model_->model->config.num_hidden_layers, stage)),
      pp_group_(std::move(pp_group)),
      device_(device),
      loads_(loads) {
  check(layout.pp == 1 || pp_group_.defined(), "pipeline executor: stage ", stage, " has no pipeline group");
}

StepPasses PipelineExecutor::run(const std::vector<data::TokenBatch>& micro_batches, const StepLoss& loss) {
  StepPasses out;
  const int64_t M = static_cast<int64_t>(micro_batches.size());
  std::vector<data::TokenBatch> batches;
  for (const auto& batch : micro_batches) batches.push_back(batch_on_device(batch, device_));
  for (const auto& pass : parallel::stage_passes(layout_, M, stage_)) {
    const auto& batch = batches[static_cast<size_t>(pass.micro_batch)];
    activation_shape_ = {batch.tokens_BT.size(0), loss.seq_len, model_->model->config.hidden_size};
    if (pass.forward) {
      forward(pass, batch, loss, out);
    } else {
      backward(pass, out);
    }
  }
  if (!sends_.empty()) {
    const auto start = SteadyClock::now();
    for (auto& work : sends_) parallel::wait_for(work);  // the last sends of the step reach their stage
    sends_.clear();
    out.receive_seconds += seconds_since(start);
  }
  check(in_flight_.empty(), "pipeline executor: ", in_flight_.size(), " micro-batches still in flight after the step");
  return out;
}

void PipelineExecutor::forward(const parallel::PipelinePass& pass, const data::TokenBatch& batch, const StepLoss& loss,
                               StepPasses& out) {
  const auto& chunk = chunks_[static_cast<size_t>(pass.virtual_stage)];
  const int64_t T = loss.seq_len;
  const model::ForwardInputs inputs{batch.tokens_BT.narrow(1, 0, T), batch.positions_BT.narrow(1, 0, T),
                                    batch.segment_ids_BT.defined() ? batch.segment_ids_BT.narrow(1, 0, T) : torch::Tensor()};
  InFlight state;
  if (!chunk.has_embedding) {
    state.input = receive_from(chunk.index - 1, pass.micro_batch, /*gradient=*/false, out).requires_grad_(true);
  }
  const auto start = SteadyClock::now();
  auto& model = model_->model;
  const auto context = model->sequence_context(inputs);
  auto h_BTD = chunk.has_embedding ? model->embed(inputs.tokens_BT, model_->compute_dtype) : state.input;
  h_BTD = model->run_layers(h_BTD, context, chunk.first_layer, chunk.end_layer);
  if (chunk.has_head) {
    const auto logits_BTV = model_->head_logits(h_BTD);
    auto nll_sum = masked_nll_sum(logits_BTV, batch.tokens_BT.narrow(1, 1, T), batch.loss_mask_BT.narrow(1, 1, T));
    if (loss.inject_nan) nll_sum = nll_sum * std::numeric_limits<double>::quiet_NaN();
    out.nll_sum += nll_sum.item<double>();
    state.output = nll_sum * loss.inverse_tokens;
  } else {
    state.output = h_BTD;
    send_to(chunk.index + 1, pass.micro_batch, /*gradient=*/false, h_BTD.detach().contiguous());
  }
  // The balance loss of this chunk's MoE layers joins the loss on the last chunk; elsewhere it is a
  // second root of the backward pass.
  if (loss.aux_scale > 0) {
    auto& aux_total = chunk.has_head ? state.output : state.aux;
    for (auto& layer : model->decoder_layers) {
      if (!layer->moe || layer->layer_index < chunk.first_layer || layer->layer_index >= chunk.end_layer) continue;
      const auto aux = sequence_balance_loss_sum(layer->moe->last_routing, inputs.tokens_BT.size(0), T) * loss.aux_scale;
      out.aux_loss += aux.item<double>();
      aux_total = aux_total.defined() ? aux_total + aux : aux;
    }
  }
  loads_.accumulate(model, chunk.first_layer, chunk.end_layer);
  synchronize(device_);  // GPU work is queued: time what ran, not what was launched
  out.forward_seconds += seconds_since(start);
  in_flight_.emplace(std::make_pair(pass.micro_batch, pass.virtual_stage), std::move(state));
}

void PipelineExecutor::backward(const parallel::PipelinePass& pass, StepPasses& out) {
  const auto& chunk = chunks_[static_cast<size_t>(pass.virtual_stage)];
  const auto found = in_flight_.find({pass.micro_batch, pass.virtual_stage});
  check(found != in_flight_.end(), "pipeline executor: backward of micro-batch ", pass.micro_batch, " before its forward");
  InFlight state = std::move(found->second);
  in_flight_.erase(found);
  torch::Tensor output_grad;
  if (!chunk.has_head) output_grad = receive_from(chunk.index + 1, pass.micro_batch, /*gradient=*/true, out);
  const auto start = SteadyClock::now();
  // A root that needs no gradient is left out: under LoRA a frozen embedding-only chunk (or a
  // frozen router's balance loss) has nothing upstream to train.
  std::vector<torch::Tensor> roots, seeds;
  const auto add_root = [&](const torch::Tensor& root, const torch::Tensor& seed) {
    if (!root.requires_grad()) return;
    roots.push_back(root);
    seeds.push_back(seed.defined() ? seed : torch::ones_like(root));
  };
  add_root(state.output, chunk.has_head ? torch::Tensor() : output_grad);
  if (state.aux.defined()) add_root(state.aux, torch::Tensor());
  if (!roots.empty()) torch::autograd::backward(roots, seeds);
  synchronize(device_);
  out.backward_seconds += seconds_since(start);
  if (state.input.defined()) {
    const auto input_grad = state.input.grad();
    check(input_grad.defined(), "pipeline executor: chunk ", chunk.index, " produced no gradient for its input");
    send_to(chunk.index - 1, pass.micro_batch, /*gradient=*/true, input_grad.contiguous());
  }
}

int PipelineExecutor::tag(int64_t micro_batch, int64_t chunk, bool gradient) const {
  const int64_t num_chunks = layout_.pp * layout_.virtual_stages;
  return static_cast<int>((micro_batch * num_chunks + chunk) * 2 + (gradient ? 1 : 0));
}

torch::Tensor PipelineExecutor::receive_from(int64_t chunk, int64_t micro_batch, bool gradient, StepPasses& out) {
  const auto start = SteadyClock::now();
  auto buffer = torch::empty(activation_shape_, torch::TensorOptions().dtype(model_->compute_dtype).device(device_));
  // Tagged by the chunk that sends: the forward output of `chunk`, or the gradient of `chunk`'s input.
  parallel::receive(pp_group_, buffer, static_cast<int>(chunk % layout_.pp), tag(micro_batch, chunk, gradient));
  out.receive_seconds += seconds_since(start);
  return buffer;
}

void PipelineExecutor::send_to(int64_t chunk, int64_t micro_batch, bool gradient, const torch::Tensor& tensor) {
  const int64_t sender = gradient ? chunk + 1 : chunk - 1;
  sends_.push_back(parallel::send_async(pp_group_, tensor, static_cast<int>(chunk % layout_.pp),
                                        tag(micro_batch, sender, gradient)));
}

}  // namespace k2f::train
