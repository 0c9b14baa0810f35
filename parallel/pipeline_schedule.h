// Pipeline parallelism's two pure decisions, shared by the trainer and the planner: which layers
// each model chunk holds, and in which order each stage runs the forward and backward passes of
// one step's micro-batches. No communication here: the trainer's pipeline executor follows these
// lists, and tests replay every stage's list together to show that no schedule can deadlock.
//
// Chunks: the embedding, the L layers and the head (final norm + lm_head) are L + 2 items cut into
// C = pp x virtual_stages chunks as evenly as possible, so the first and last chunks carry fewer
// layers (Megatron-LM's account-for-embedding/loss split). Chunk c runs on stage c % pp as its
// virtual stage c / pp (the interleaved assignment; with one virtual stage, chunk c is stage c).
//
// Schedules (M micro-batches, pp stages, V virtual stages, stage s):
// - gpipe: every forward, then every backward; M micro-batches of activations in flight.
// - 1f1b: pp - s - 1 warm-up forwards, then one forward and one backward in turn, then the
//   remaining backwards; at most pp - s micro-batches in flight.
// - interleaved: 1F1B over M x V (micro-batch, chunk) passes, micro-batches taken pp at a time
//   through the V chunks (Megatron-LM's order); the bubble shrinks by V; M must be a multiple of pp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "parallel/mesh.h"

namespace k2f::parallel {

struct PipelineChunk {
  int64_t index = 0;        // global chunk id in [0, pp x virtual_stages)
  int64_t first_layer = 0;  // decoder layers [first_layer, end_layer)
  int64_t end_layer = 0;
  bool has_embedding = false;  // the first chunk
  bool has_head = false;       // the last chunk: final norm, lm_head and loss
};

// The first layer of each of the `num_chunks` chunks, plus L at the end (a chunk may hold no layer).
std::vector<int64_t> chunk_boundaries(int64_t num_layers, int64_t num_chunks);

// The chunks stage `stage` runs, by virtual stage (entry v is global chunk v x pp + stage).
std::vector<PipelineChunk> stage_chunks(const ParallelLayout& layout, int64_t num_layers, int64_t stage);

// Every decoder layer of the stage's chunks, ascending.
std::vector<int64_t> stage_layers(const ParallelLayout& layout, int64_t num_layers, int64_t stage);

struct PipelinePass {
  bool forward = true;       // false: backward
  int64_t micro_batch = 0;
  int64_t virtual_stage = 0;  // which of the stage's chunks
};

// Throws with the recipe keys when `num_micro_batches` does not suit the schedule (interleaved
// needs a multiple of pp).
void check_micro_batches(const ParallelLayout& layout, int64_t num_micro_batches);

// The order in which stage `stage` runs the forward and backward pass of each micro-batch
// through each of its chunks: 2 x M x V passes, each (micro-batch, chunk) forward before its backward.
std::vector<PipelinePass> stage_passes(const ParallelLayout& layout, int64_t num_micro_batches, int64_t stage);

// The most micro-batches whose activations stage `stage` holds at once under its schedule.
int64_t peak_micro_batches_in_flight(const std::vector<PipelinePass>& passes);

}  // namespace k2f::parallel
