#include "train/plan/pipeline_inflight.h"

#include <algorithm>

namespace k2f::train::plan {

double inflight_micro_batches(const parallel::ParallelLayout& l, int64_t stage, int64_t m) {
  const double micro_batches = static_cast<double>(m);
  if (l.schedule == "gpipe") return micro_batches;
  if (l.schedule == "interleaved") {
    const double chunk_passes = static_cast<double>((l.pp - stage - 1) * 2 + (l.virtual_stages - 1) * l.pp + 1);
    return std::min(micro_batches, chunk_passes / static_cast<double>(l.virtual_stages));
  }
  return std::min(micro_batches, static_cast<double>(l.pp - stage));  // 1f1b
}

double bubble_micro_batches(const parallel::ParallelLayout& l) {
  const double fill = static_cast<double>(l.pp - 1);
  return l.schedule == "interleaved" ? fill / static_cast<double>(l.virtual_stages) : fill;
}

}  // namespace k2f::train::plan
