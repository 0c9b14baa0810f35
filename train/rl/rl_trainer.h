// `k2forge rl`: on-policy RL of a thinking, tool-calling model on an environment's tasks (the
// embedded arithmetic task or the user's JSONL prompts, environment.h). One step:
// P prompts x K samples are rolled out with tools (rollout.h) at the step's temperature, judged
// and rewarded (rewards.h), then the trainer recomputes the log-probs of the sampled tokens in a
// training forward pass (checked against the sampler's: logprob_mismatch), routing every token to
// the experts the sampler chose (rl.routing_replay, model/routing_replay.h), and minimises
// PMD-mean or the GRPO surrogate (objectives.h), plus the optional k3 KL to the frozen initial
// policy and PTX loss, with the optimizer, clipping and schedule of `k2forge train`. Held-out
// accuracy is measured before the first and after the last step (eval.json). Metrics go to
// metrics.jsonl, TensorBoard and the console like the trainer's.
// Under mpirun the policy is replicated over data-parallel ranks: each rank rolls out and judges
// a contiguous share of the step's prompts (each episode seeded by its index in the step, so the
// episodes are those one process samples), the loss stays a mean over all of the step's episodes,
// gradients are summed over ranks and metrics gathered, so the run equals one process.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "base/json_io.h"
#include "data/chat_template.h"
#include "data/token_loader.h"
#include "data/tokenizer.h"
#include "model/kimi_model.h"
#include "quant/lora.h"
#include "quant/qat.h"
#include "train/checkpoint.h"
#include "train/optim/optimizer.h"
#include "train/parallel_runtime.h"
#include "train/rl/environment.h"
#include "train/rl/evaluation.h"
#include "train/rl/rl_options.h"
#include "train/rl/rollout.h"
#include "train/rl/tools.h"

namespace k2f::train::rl {

struct RlStepMetrics {
  int64_t step = 0;  // 1-based
  double loss = 0, ptx_loss = 0, lr = 0, grad_norm = 0, temperature = 0;
  double reward_mean = 0, reward_std = 0, accuracy = 0, format_rate = 0;
  double response_length = 0, tool_calls_per_episode = 0, truncation_rate = 0;
  double progress = 0;  // mean share of the steps done right in order (EpisodeOutcome::progress)
  double kl = 0;                 // k3 estimate to the reference (0 without one)
  double logprob_mismatch = 0;   // max |trainer - sampler| log-prob over sampled tokens
  double logprob_mismatch_mean = 0;             // its mean over sampled tokens
  double logprob_mismatch_share_over_1e5 = 0;   // the share of sampled tokens where it exceeds 1e-5
  ToolStats tools;
  int64_t trained_episodes = 0;  // episodes in groups with a learning signal (see train_step)
  double rollout_seconds = 0, train_seconds = 0, seconds = 0;
  int64_t tool_calls_max = 0;       // the most tool calls of one episode
  double rollout_tokens_per_s = 0;  // sampled tokens of every rank / the rollout's wall time
  Json to_json() const;
};

struct RlRunResult {
  EvalReport before, after;  // `after` only when the run reached train.steps
  bool stopped_early = false;  // --stop-after: a checkpoint was written, no final evaluation
  std::vector<RlStepMetrics> steps;
};

struct RlRunOptions {
  bool quiet_console = false;
  int64_t stop_after_steps = 0;  // > 0: stop (with a checkpoint) after this many steps of this run
  bool evaluate_only = false;    // --eval-only: nothing trains, so any model loads (a LoRA checkpoint too)
};

class RlTrainer {
 public:
  // `context`: the joined ranks of a data-parallel run (join_launched_ranks); null: one process.
  explicit RlTrainer(RlOptions options, RlRunOptions run_options = {},
                     std::shared_ptr<parallel::DistributedContext> context = nullptr);
  ~RlTrainer();

  // Held-out eval, steps, eval; checkpoints and metrics in train.run_dir. A run directory holding
  // an RL checkpoint resumes from its newest intact one (model, optimizer, RNG, PTX sampler and the
  // "before" evaluation) and continues exactly as the uninterrupted run: rollouts are seeded by
  // step, so steps after the checkpoint repeat bit for bit.
  RlRunResult run();
  RlStepMetrics train_step(int64_t step);
  EvalReport evaluate();

  model::KimiForCausalLM& model() { return model_; }

 private:
  struct Batch;
  double optimise(const Batch& batch, RlStepMetrics& m);
  void save_checkpoint(int64_t step, const EvalReport& before);
  // The model rollouts and evaluations sample from: the policy itself, or with QAT a copy whose
  // targets are packed to INT4 from the current masters (W4A16), as K2 rolls out from INT4.
  model::KimiForCausalLM sampling_model();
  void resume(const LoadedCheckpoint& checkpoint);
  void set_up();
  void adapt_policy();
  // What checkpoints hold of the policy: every tensor, or under LoRA RL the adapters.
  std::vector<std::pair<std::string, torch::Tensor>> checkpointed_policy_state() const;
  // The step's episode outcomes of every rank, in episode order, from this rank's (at `first`).
  struct StepOutcomes;
  StepOutcomes gather_outcomes(const std::vector<Episode>& episodes, const std::vector<EpisodeOutcome>& outcomes,
                               int64_t first, int64_t total) const;

  RlOptions options_;
  RlRunOptions run_options_;
  std::unique_ptr<ParallelRuntime> parallel_;
  std::unique_ptr<data::Tokenizer> tokenizer_;  // loaded in set_up, where a failure on one rank stops all
  std::unique_ptr<data::ChatTemplate> chat_;
  std::unique_ptr<ToolRunner> tools_;
  std::unique_ptr<RolloutEngine> engine_;
  std::unique_ptr<RlEnvironment> env_;
  model::KimiForCausalLM model_{nullptr};
  model::KimiForCausalLM reference_{nullptr};
  std::vector<std::pair<std::string, torch::Tensor>> named_parameters_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<data::TokenLoader> ptx_loader_;
  std::vector<RlTask> tasks_;  // the run's training tasks, P per step
  std::optional<quant::QatOptions> qat_;  // set when the policy trains with INT4 QAT
  // LoRA RL: the adapters that train, their settings, and the frozen base they sit on (its
  // directory and files' checksums, recorded in checkpoints).
  std::optional<quant::LoraAdapters> lora_;
  quant::LoraOptions lora_options_;
  std::string lora_base_;
  Json lora_base_files_;
  int64_t start_step_ = 0;                 // steps completed before this run (resumed checkpoint)
  std::optional<EvalReport> resumed_before_;
};

}  // namespace k2f::train::rl
