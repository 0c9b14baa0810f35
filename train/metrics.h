// Per-step training metrics, written three ways: one JSON object per line in metrics.jsonl, scalar
// summaries in TensorBoard event files under <run_dir>/tensorboard, and a console line (with a
// progress bar and ETA when stderr is a terminal). On resume the jsonl is cut back to the
// checkpoint's step so no step appears twice.
#pragma once

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "base/json_io.h"
#include "train/tensorboard.h"

namespace k2f::train {

struct StepMetrics {
  int64_t step = 0;  // 1-based: optimizer steps completed
  double loss = 0;   // mean next-token NLL over the step's unmasked tokens
  double aux_loss = 0;
  double lr = 0;
  double grad_norm = 0;
  double tokens_per_s = 0;
  double model_flops_per_s = 0;
  double mfu = 0;
  double max_qk_logit = 0;
  int64_t qk_heads_clipped = 0;
  std::vector<double> expert_imbalance;  // max/mean load per MoE layer
  // Under QAT: sum|w - fq(w)| / sum|w| of each layer's quantised weights ("layer.<i>", error).
  std::vector<std::pair<std::string, double>> quant_error;
  int64_t tokens_seen = 0;
  // A non-finite loss or gradient norm: no update was applied (weights, optimizer state, router
  // biases unchanged); `skipped_steps` counts them over the run.
  bool skipped = false;
  int64_t skipped_steps = 0;
  int64_t rss_bytes = 0;
  int64_t peak_rss_bytes = 0;  // the process's high-water mark so far (loading included)
  double seconds = 0;  // wall time of the step
  double forward_seconds = 0, backward_seconds = 0, optimizer_seconds = 0, data_seconds = 0;
  // Blocked on another pipeline stage (transfers and the pipeline bubble); 0 without pp.
  double pipeline_wait_seconds = 0;
  // Gradient all-reduce over the data-parallel groups (inside optimizer_seconds).
  double grad_sync_seconds = 0;
  // Blocked on any communication during the step (expert all-to-all inside forward and backward,
  // pipeline receives, gradient sync, ZeRO-1 broadcasts, metric reductions); 0 in one process.
  double communication_seconds = 0;
  Json to_json() const;
};

// Keeps the lines of a metrics.jsonl whose "step" is <= `last_step` (a resumed run rewrites the
// steps after its checkpoint); a torn last line from an interrupted write is dropped.
void keep_metrics_through_step(const std::string& path, int64_t last_step);

class MetricsLogger {
 public:
  // `console`: also print a line (or progress bar) per step on stderr.
  MetricsLogger(const std::string& run_dir, int64_t total_steps, int64_t resumed_step, bool tensorboard, bool console);
  void log(const StepMetrics& metrics);
  void finish();

 private:
  std::string jsonl_path_;
  std::ofstream jsonl_;
  std::unique_ptr<TensorBoardWriter> tensorboard_;
  int64_t total_steps_, first_step_;
  bool console_, interactive_;
  std::chrono::steady_clock::time_point start_;
};

// Resident set size of this process in bytes (Linux /proc), 0 when unknown.
int64_t resident_bytes();
// The process's peak resident set size so far in bytes (getrusage), 0 when unknown.
int64_t peak_resident_bytes();

}  // namespace k2f::train
