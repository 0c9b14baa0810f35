// FLOPs, communication and time of one optimizer step on the cluster, for the slowest stage.
// Compute runs at bf16_tflops x gemm_efficiency on the FLOPs the code executes (the full [T,T]
// attention square, plus a second layer forward under recompute); MFU counts the useful FLOPs
// (6 x active matmul parameters + causal attention, as model/param_count.h defines them).
// Communication per GPU: EP all-to-all (dispatch and combine, forward, backward and recompute),
// hidden behind compute under the interleaved schedule (as K2 does) and exposed otherwise; PP
// send/recv of [tokens, D] per chunk boundary; ZeRO-1 reduce-scatter of fp32 gradients and
// all-gather of weights once per step (all-reduce without ZeRO-1), exposed.
#pragma once

#include <vector>

#include "base/json_io.h"
#include "train/plan/memory_plan.h"
#include "train/plan/plan_inputs.h"

namespace k2f::train::plan {

struct FlopsPerToken {
  double forward = 0;     // useful: causal attention
  double backward = 0;    // 2 x forward
  double recompute = 0;   // the layers' forward again (0 without recompute)
  double executed = 0;    // what runs: forward + backward + recompute with full-square attention
  double useful() const { return forward + backward; }
};
FlopsPerToken flops_per_token(const PlanInputs& inputs);

struct CommPerStep {  // bytes one GPU sends per optimizer step
  double ep_all_to_all = 0;
  double pp_send_recv = 0;
  double dp_reduce_scatter = 0;  // all-reduce's first half without ZeRO-1
  double dp_all_gather = 0;
  Json to_json() const;
};

struct StepTimeEstimate {
  FlopsPerToken flops;
  CommPerStep comm;
  int64_t slowest_stage = 0;
  double compute_s = 0;       // m micro-batches of the slowest stage
  double bubble_s = 0;        // pipeline fill and drain
  double ep_exposed_s = 0;
  double pp_exposed_s = 0;
  double dp_s = 0;
  double step_s = 0;
  double tokens_per_step = 0;
  double tokens_per_s_per_gpu = 0;
  double mfu = 0;
  double gpu_hours_per_trillion_tokens = 0;
  Json to_json() const;
};

// Requires inputs.cluster.
StepTimeEstimate estimate_step_time(const PlanInputs& inputs);

}  // namespace k2f::train::plan
