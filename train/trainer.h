// The training loop (DESIGN.md "Data flow of one training step"): sampler -> micro-batches ->
// forward/backward with the loss divided by the step's global token count -> gradient clipping ->
// optimizer step -> QK-Clip -> router-bias update -> metrics -> periodic checkpoint. A run
// resumes from its run directory's newest intact checkpoint and continues bit for bit as if it
// had never stopped: weights, optimizer state, router biases, RNG and sampler position are saved.
// Under a launcher the same loop runs pipeline-, data- and expert-parallel (parallel_runtime.h,
// pipeline_executor.h): each dp index takes its share of the global batch through every stage,
// gradients are summed over ranks, and every reduction that steers training (token count, norm,
// loads, QK maxima) is global, so the run equals one process.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "data/token_loader.h"
#include "model/kimi_model.h"
#include "train/checkpoint.h"
#include "train/load_balance.h"
#include "train/model_loading.h"
#include "train/metrics.h"
#include "train/optim/optimizer.h"
#include "train/parallel_runtime.h"
#include "train/pipeline_executor.h"
#include "train/train_options.h"

namespace k2f::train {

struct TrainerRunOptions {
  bool fresh = false;            // refuse to resume; the run dir must hold no checkpoint
  int64_t stop_after_steps = 0;  // >0: stop (with a checkpoint) after this many steps of this invocation
  bool quiet_console = false;
  // SIGTERM / SIGINT stop the run after the current step with a checkpoint (StopSignals); the CLI
  // turns this on, tests that send no signal leave it off.
  bool handle_stop_signals = false;
};

class Trainer {
 public:
  // `context`: the joined ranks of a distributed run (join_launched_ranks); null: one process.
  // Every rank validates the options and builds its part; a failure on any rank stops them all.
  Trainer(TrainOptions options, TrainerRunOptions run_options = {},
          std::shared_ptr<parallel::DistributedContext> context = nullptr);
  ~Trainer();

  // Trains until train.steps (or stop_after_steps); returns each step's metrics of this invocation.
  std::vector<StepMetrics> run();

  // One optimizer step (exposed for benchmarks); `step` is 0-based.
  StepMetrics train_step(int64_t step);

  model::KimiForCausalLM& model() { return model_; }
  // Where the model, its gradients and optimizer state live (train.device).
  const torch::Device& device() const { return device_; }
  int64_t completed_steps() const { return completed_steps_; }
  // The signal that stopped the last run() early (0: it ran to its end).
  int stopped_by_signal() const { return stopped_by_signal_; }
  const ParallelRuntime& parallel_runtime() const { return *parallel_; }
  // This rank's optimizer state (slots and step count) under the checkpoint's names.
  std::vector<std::pair<std::string, torch::Tensor>> optimizer_state() const { return optimizer_->state_tensors(); }
  int64_t optimizer_state_bytes() const { return optimizer_->state_bytes(); }
  // The parameters this run trains (every weight, or with LoRA the adapters) and their element count.
  const NamedTensorList& trained_parameters() const { return named_parameters_; }

 private:
  void set_up();
  void build_model();
  void log_optimizer_state_bytes() const;
  void initialise_weights();
  model::KimiForCausalLM frozen_base_model();
  std::vector<std::string> checkpoint_reads() const;
  void agree_on_resume_step();
  void resume_or_start();
  void resume(LoadedCheckpoint& loaded);
  Json checkpoint_meta(const std::vector<Json>& parts) const;
  // What a checkpoint holds of the model: every tensor, or with LoRA the adapters only.
  NamedTensorList checkpointed_model_state() const;
  LoraRecord lora_record(const std::vector<Json>& parts) const;
  void check_adapted_modules(const std::vector<std::string>& recorded, const std::string& meta_path) const;
  void zero_gradients();
  void save_checkpoint();
  // Records a step whose loss or gradient is not finite (no update applied); stops the run after
  // train.max_bad_steps of them in a row.
  void skip_bad_step(StepMetrics& m);
  bool stop_requested_on_any_rank() const;
  std::vector<double> whole_model_imbalance() const;
  std::vector<std::pair<std::string, double>> whole_model_quant_error() const;

  TrainOptions options_;
  TrainerRunOptions run_options_;
  torch::Device device_{torch::kCPU};
  std::unique_ptr<ParallelRuntime> parallel_;
  model::KimiForCausalLM model_{nullptr};
  std::optional<quant::LoraAdapters> lora_;  // lora.rank > 0: the only parameters that train
  std::string lora_base_;                    // train.init_from, absolute
  Json lora_base_files_;                     // its files' sizes and CRC-32C
  NamedTensorList named_parameters_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<data::TokenLoader> loader_;
  std::unique_ptr<CheckpointManager> checkpoints_;
  std::optional<LoadedCheckpoint> resume_from_;  // found by set_up, agreed on by every rank, then loaded
  std::unique_ptr<ExpertLoadTracker> loads_;
  std::unique_ptr<PipelineExecutor> executor_;
  int64_t completed_steps_ = 0;
  int64_t tokens_seen_ = 0;
  int64_t skipped_steps_ = 0;
  int64_t consecutive_bad_steps_ = 0;
  int64_t first_bad_step_ = 0;
  int stopped_by_signal_ = 0;
  bool inject_nan_ = false;  // debug.nan_at_step covers the current step
  double peak_flops_ = 0;
  double flops_per_token_ = 0;
};

}  // namespace k2f::train
