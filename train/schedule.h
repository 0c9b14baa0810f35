// Learning-rate schedules: warmup-stable-decay as K2 (linear warmup, constant, then cosine or
// linear decay to min_lr over the last decay_steps), plain cosine after warmup, and constant.
#pragma once

#include <cstdint>
#include <string>

namespace k2f::train {

struct ScheduleOptions {
  std::string name = "wsd";          // wsd, cosine or constant
  int64_t warmup_steps = 0;
  int64_t decay_steps = 0;           // wsd: length of the final decay
  std::string decay_shape = "cosine";  // wsd: cosine or linear
  double min_lr = 0.0;
  void validate(double lr, int64_t total_steps) const;  // messages use "schedule.<key>"
};

// lr for 0-based `step` of `total_steps`, peaking at `lr`.
double learning_rate(const ScheduleOptions& options, double lr, int64_t step, int64_t total_steps);

}  // namespace k2f::train
