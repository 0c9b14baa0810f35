#include "train/schedule.h"

#include <cmath>

#include "base/error.h"

namespace k2f::train {

void ScheduleOptions::validate(double lr, int64_t total_steps) const {
  check(name == "wsd" || name == "cosine" || name == "constant", "schedule.name (\"", name,
        "\") must be \"wsd\", \"cosine\" or \"constant\"");
  check(warmup_steps >= 0, "schedule.warmup_steps (", warmup_steps, ") must be >= 0");
  check(warmup_steps <= total_steps, "train.steps (", total_steps, ") must be >= schedule.warmup_steps (",
        warmup_steps, ")");
  check(decay_shape == "cosine" || decay_shape == "linear", "schedule.decay_shape (\"", decay_shape,
        "\") must be \"cosine\" or \"linear\"");
  check(min_lr >= 0 && min_lr <= lr, "schedule.min_lr (", min_lr, ") must be in [0, optim.lr (", lr, ")]");
  if (name == "wsd") {
    check(decay_steps >= 0 && warmup_steps + decay_steps <= total_steps, "schedule.warmup_steps (", warmup_steps,
          ") + schedule.decay_steps (", decay_steps, ") must be <= train.steps (", total_steps, ")");
  }
}

namespace {
// progress in [0, 1] -> factor from 1 down to 0.
double decay_factor(const std::string& shape, double progress) {
  return shape == "linear" ? 1.0 - progress : 0.5 * (1.0 + std::cos(M_PI * progress));
}
}  // namespace

double learning_rate(const ScheduleOptions& o, double lr, int64_t step, int64_t total_steps) {
  if (step < o.warmup_steps) return lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  if (o.name == "constant") return lr;
  int64_t decay_start = o.warmup_steps, decay_length = total_steps - o.warmup_steps;
  std::string shape = "cosine";
  if (o.name == "wsd") {
    decay_start = total_steps - o.decay_steps;
    decay_length = o.decay_steps;
    shape = o.decay_shape;
  }
  if (step < decay_start || decay_length <= 0) return lr;
  const double progress = std::min(1.0, static_cast<double>(step - decay_start + 1) / static_cast<double>(decay_length));
  return o.min_lr + (lr - o.min_lr) * decay_factor(shape, progress);
}

}  // namespace k2f::train
