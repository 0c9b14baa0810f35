// QK-Clip, the "Clip" of MuonClip (K2_REFERENCE section 4): the attention forward records each
// head's largest pre-softmax logit over the step; after the optimizer step every head above tau
// has its q_nope and k_nope rows scaled by sqrt(tau/S) and its q_pe rows by tau/S, so its logits
// shrink by exactly tau/S. The shared rope key (rows of kv_a_proj_with_mqa) is never touched.
#pragma once

#include "model/kimi_model.h"

namespace k2f::train {

struct QkClipReport {
  double max_logit = 0;       // over all layers and heads this step
  int64_t heads_clipped = 0;
};

// Turns on recording in every attention layer and clears the running maxima.
void begin_qk_recording(model::KimiModel& model);

// Reads the recorded maxima and rescales the heads above tau (tau <= 0: report only).
QkClipReport apply_qk_clip(model::KimiModel& model, double tau);

}  // namespace k2f::train
