// parallel/pipeline_schedule.cpp: chunk cuts and pass orders worked out by hand, and for every
// schedule and size, a replay of all stages' pass lists together (sends never block, a pass waits
// for the pass it receives from) that must finish: no schedule can deadlock the pipeline.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>

#include "parallel/pipeline_schedule.h"
#include "test_util.h"

namespace k2f::parallel {
namespace {

ParallelLayout pipeline(int64_t pp, std::string schedule, int64_t virtual_stages = 1) {
  ParallelLayout l;
  l.pp = pp;
  l.schedule = std::move(schedule);
  l.virtual_stages = virtual_stages;
  return l;
}

std::string spell(const std::vector<PipelinePass>& passes) {
  std::ostringstream out;
  for (const auto& p : passes) out << (p.forward ? "F" : "B") << p.micro_batch << (p.virtual_stage ? "'" : "") << " ";
  return out.str();
}

TEST(PipelineSchedule, ChunksPutTheEmbeddingFirstAndTheHeadLast) {
  const auto two = pipeline(2, "1f1b");
  const auto s0 = stage_chunks(two, 3, 0), s1 = stage_chunks(two, 3, 1);  // 5 items: emb+L0 | L1 L2 head
  ASSERT_EQ(s0.size(), 1u);
  EXPECT_EQ(s0[0].first_layer, 0);
  EXPECT_EQ(s0[0].end_layer, 1);
  EXPECT_TRUE(s0[0].has_embedding);
  EXPECT_FALSE(s0[0].has_head);
  EXPECT_EQ(s1[0].first_layer, 1);
  EXPECT_EQ(s1[0].end_layer, 3);
  EXPECT_TRUE(s1[0].has_head);

  const auto interleaved = pipeline(2, "interleaved", 2);  // 6 items in 4 chunks: emb | L0 L1 | L2 | L3 head
  const auto i0 = stage_chunks(interleaved, 4, 0), i1 = stage_chunks(interleaved, 4, 1);
  ASSERT_EQ(i0.size(), 2u);
  EXPECT_EQ(i0[0].index, 0);
  EXPECT_EQ(i0[0].end_layer - i0[0].first_layer, 0);  // the embedding alone
  EXPECT_EQ(i0[1].index, 2);
  EXPECT_EQ(i0[1].first_layer, 2);
  EXPECT_EQ(i0[1].end_layer, 3);
  EXPECT_EQ(i1[0].index, 1);
  EXPECT_EQ(i1[0].first_layer, 0);
  EXPECT_EQ(i1[0].end_layer, 2);
  EXPECT_EQ(i1[1].index, 3);
  EXPECT_TRUE(i1[1].has_head);
  EXPECT_EQ(stage_layers(interleaved, 4, 0), (std::vector<int64_t>{2}));
  EXPECT_EQ(stage_layers(interleaved, 4, 1), (std::vector<int64_t>{0, 1, 3}));
}

TEST(PipelineSchedule, OrdersMatchTheirDefinitions) {
  EXPECT_EQ(spell(stage_passes(pipeline(2, "gpipe"), 3, 0)), "F0 F1 F2 B0 B1 B2 ");
  EXPECT_EQ(spell(stage_passes(pipeline(2, "1f1b"), 4, 0)), "F0 F1 B0 F2 B1 F3 B2 B3 ");
  EXPECT_EQ(spell(stage_passes(pipeline(2, "1f1b"), 4, 1)), "F0 B0 F1 B1 F2 B2 F3 B3 ");
  // Megatron-LM's interleaved order, pp 2, 2 chunks per stage (' = the second chunk), 4 micro-batches.
  EXPECT_EQ(spell(stage_passes(pipeline(2, "interleaved", 2), 4, 0)),
            "F0 F1 F0' F1' F2 B0' F3 B1' F2' B0 F3' B1 B2' B3' B2 B3 ");
  EXPECT_EQ(spell(stage_passes(pipeline(2, "interleaved", 2), 4, 1)),
            "F0 F1 F0' B0' F1' B1' F2 B0 F3 B1 F2' B2' F3' B3' B2 B3 ");
  // M == pp: every forward first.
  EXPECT_EQ(spell(stage_passes(pipeline(2, "interleaved", 2), 2, 1)), "F0 F1 F0' F1' B0' B1' B0 B1 ");
}

TEST(PipelineSchedule, InterleavedNeedsAMultipleOfTheStagesInMicroBatches) {
  testing::expect_error([] { stage_passes(pipeline(2, "interleaved", 2), 3, 0); },
                        {"the micro-batches per rank and step (3 = train.global_batch_size"});
  testing::expect_error([] { stage_passes(pipeline(2, "1f1b"), 0, 0); }, {"at least one micro-batch"});
}

// Replays every stage's passes: each stage runs its next pass once what it receives is ready (a
// forward needs the previous chunk's forward of that micro-batch, a backward the next chunk's
// backward); sends never wait. Returns false if the stages stop before all passes ran.
bool replays_without_deadlock(const ParallelLayout& layout, int64_t M) {
  const int64_t pp = layout.pp, C = pp * layout.virtual_stages;
  std::vector<std::vector<PipelinePass>> passes;
  for (int64_t s = 0; s < pp; ++s) passes.push_back(stage_passes(layout, M, s));
  std::set<std::tuple<bool, int64_t, int64_t>> done;  // (forward, micro-batch, global chunk)
  std::vector<size_t> next(static_cast<size_t>(pp), 0);
  for (bool progress = true; progress;) {
    progress = false;
    for (int64_t s = 0; s < pp; ++s) {
      while (next[s] < passes[s].size()) {
        const auto& p = passes[s][next[s]];
        const int64_t chunk = p.virtual_stage * pp + s;
        const bool ready = p.forward ? (chunk == 0 || done.count({true, p.micro_batch, chunk - 1}))
                                     : (chunk == C - 1 ? done.count({true, p.micro_batch, chunk}) > 0
                                                       : done.count({false, p.micro_batch, chunk + 1}) > 0);
        if (!ready) break;
        done.insert({p.forward, p.micro_batch, chunk});
        ++next[s];
        progress = true;
      }
    }
  }
  for (int64_t s = 0; s < pp; ++s)
    if (next[s] != passes[s].size()) return false;
  return true;
}

TEST(PipelineSchedule, EverySchedulePassesEachMicroBatchOnceAndCannotDeadlock) {
  for (const std::string schedule : {"gpipe", "1f1b", "interleaved"}) {
    for (int64_t pp : {1, 2, 3, 4}) {
      for (int64_t V : schedule == "interleaved" ? std::vector<int64_t>{2, 3} : std::vector<int64_t>{1}) {
        if (schedule == "interleaved" && pp == 1) continue;
        const auto layout = pipeline(pp, schedule, V);
        for (int64_t M = 1; M <= 12; ++M) {
          if (schedule == "interleaved" && M % pp != 0) continue;
          SCOPED_TRACE(schedule + " pp " + std::to_string(pp) + " V " + std::to_string(V) + " M " + std::to_string(M));
          for (int64_t s = 0; s < pp; ++s) {
            const auto passes = stage_passes(layout, M, s);
            ASSERT_EQ(passes.size(), static_cast<size_t>(2 * M * V));
            std::set<std::pair<int64_t, int64_t>> forwarded, backwarded;
            for (const auto& p : passes) {
              const std::pair<int64_t, int64_t> key{p.micro_batch, p.virtual_stage};
              ASSERT_TRUE(p.micro_batch >= 0 && p.micro_batch < M && p.virtual_stage >= 0 && p.virtual_stage < V);
              if (p.forward) {
                EXPECT_TRUE(forwarded.insert(key).second) << spell(passes);
              } else {
                EXPECT_TRUE(forwarded.count(key)) << "backward before forward: " << spell(passes);
                EXPECT_TRUE(backwarded.insert(key).second) << spell(passes);
              }
            }
            const int64_t peak = peak_micro_batches_in_flight(passes);
            if (schedule == "gpipe") {
              EXPECT_EQ(peak, M);
            } else if (schedule == "1f1b") {
              EXPECT_EQ(peak, std::min(M, pp - s));
            } else {  // Megatron-LM's warm-up plus the pass of the steady phase
              EXPECT_EQ(peak, M == pp ? M * V : std::min(M * V, (pp - s - 1) * 2 + (V - 1) * pp + 1));
            }
          }
          EXPECT_TRUE(replays_without_deadlock(layout, M));
        }
      }
    }
  }
}

}  // namespace
}  // namespace k2f::parallel
