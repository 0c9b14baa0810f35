#include "parallel/pipeline_schedule.h"

#include <algorithm>

#include "base/error.h"

namespace k2f::parallel {

std::vector<int64_t> chunk_boundaries(int64_t num_layers, int64_t num_chunks) {
  std::vector<int64_t> bounds;
  for (int64_t c = 0; c <= num_chunks; ++c) {  // item i is layer i - 1; item 0 the embedding, L + 1 the head
    bounds.push_back(std::clamp<int64_t>(c * (num_layers + 2) / num_chunks - 1, 0, num_layers));
  }
  return bounds;
}

std::vector<PipelineChunk> stage_chunks(const ParallelLayout& layout, int64_t num_layers, int64_t stage) {
  check(stage >= 0 && stage < layout.pp, "pipeline stage ", stage, " outside [0, ", layout.pp, ")");
  const int64_t num_chunks = layout.pp * layout.virtual_stages;
  const auto bounds = chunk_boundaries(num_layers, num_chunks);
  std::vector<PipelineChunk> chunks;
  for (int64_t v = 0; v < layout.virtual_stages; ++v) {
    const int64_t c = v * layout.pp + stage;
    chunks.push_back({c, bounds[c], bounds[c + 1], c == 0, c == num_chunks - 1});
  }
  return chunks;
}

std::vector<int64_t> stage_layers(const ParallelLayout& layout, int64_t num_layers, int64_t stage) {
  std::vector<int64_t> layers;
  for (const auto& chunk : stage_chunks(layout, num_layers, stage))
    for (int64_t l = chunk.first_layer; l < chunk.end_layer; ++l) layers.push_back(l);
  std::sort(layers.begin(), layers.end());
  return layers;
}

void check_micro_batches(const ParallelLayout& layout, int64_t num_micro_batches) {
  check(num_micro_batches >= 1, "pipeline: a step needs at least one micro-batch per rank (got ", num_micro_batches, ")");
  if (layout.schedule == "interleaved") {
    check(num_micro_batches % layout.pp == 0, "parallel.schedule \"interleaved\": the micro-batches per rank and step (",
          num_micro_batches, " = train.global_batch_size / (train.micro_batch_size x parallel.dp)) must be a multiple of ",
          "parallel.pp (", layout.pp, ")");
  }
}

namespace {

// Megatron-LM's interleaved order: the k-th forward (or backward) pass of a stage takes micro-batch
// (k / (pp V)) pp + k % pp through virtual stage (k / pp) % V (backward: the chunks in reverse).
PipelinePass interleaved_pass(int64_t k, bool forward, int64_t pp, int64_t V) {
  const int64_t in_group = k % (pp * V);
  int64_t chunk = in_group / pp;
  if (!forward) chunk = V - 1 - chunk;
  return {forward, (k / (pp * V)) * pp + k % pp, chunk};
}

}  // namespace

std::vector<PipelinePass> stage_passes(const ParallelLayout& layout, int64_t M, int64_t stage) {
  check_micro_batches(layout, M);
  const int64_t pp = layout.pp, V = layout.virtual_stages;
  std::vector<PipelinePass> passes;
  if (layout.schedule == "gpipe") {
    for (int64_t m = 0; m < M; ++m) passes.push_back({true, m, 0});
    for (int64_t m = 0; m < M; ++m) passes.push_back({false, m, 0});
    return passes;
  }
  // 1F1B, interleaved or not: warm-up forwards, then forward/backward pairs, then the backwards left.
  const bool interleaved = layout.schedule == "interleaved";
  const int64_t total = M * V;
  int64_t warmup = interleaved ? (M == pp ? total : std::min(total, (pp - stage - 1) * 2 + (V - 1) * pp))
                               : std::min(M, pp - stage - 1);
  const auto pass = [&](int64_t k, bool forward) {
    return interleaved ? interleaved_pass(k, forward, pp, V) : PipelinePass{forward, k, 0};
  };
  for (int64_t k = 0; k < warmup; ++k) passes.push_back(pass(k, true));
  for (int64_t k = 0; k + warmup < total; ++k) {
    passes.push_back(pass(k + warmup, true));
    passes.push_back(pass(k, false));
  }
  for (int64_t k = total - warmup; k < total; ++k) passes.push_back(pass(k, false));
  return passes;
}

int64_t peak_micro_batches_in_flight(const std::vector<PipelinePass>& passes) {
  int64_t live = 0, peak = 0;
  for (const auto& p : passes) {
    live += p.forward ? 1 : -1;
    peak = std::max(peak, live);
  }
  return peak;
}

}  // namespace k2f::parallel
