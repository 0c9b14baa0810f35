// Tests of data/sequence_sampler.cpp: the global order is a pure function of the seed, each
// epoch visits every window once when mixing by size, epochs reshuffle, weights give the
// counts worked out by hand, and the RNG is the standard mt19937_64.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "data/sequence_sampler.h"

namespace k2f::data {
namespace {

std::vector<std::pair<int, int64_t>> take(SequenceSampler& sampler, int64_t from, int64_t count) {
  std::vector<std::pair<int, int64_t>> picks;
  for (int64_t g = from; g < from + count; ++g) {
    const auto p = sampler.pick(g);
    picks.push_back({p.store, p.window});
  }
  return picks;
}

TEST(SequenceSampler, StandardGeneratorAndStablePermutation) {
  std::mt19937_64 rng;  // the C++ standard fixes the 10000th output of a default-seeded mt19937_64
  rng.discard(9999);
  EXPECT_EQ(rng(), 9981545732273789042ULL);
  const auto p = seeded_permutation(10, 42);
  EXPECT_EQ(std::set<int64_t>(p.begin(), p.end()).size(), 10u);
  EXPECT_EQ(seeded_permutation(10, 42), p);
  EXPECT_NE(seeded_permutation(10, 43), p);
}

TEST(SequenceSampler, SameSeedSameOrderOtherSeedOtherOrder) {
  SequenceSampler a({50, 30}, {}, 7), b({50, 30}, {}, 7), c({50, 30}, {}, 8);
  EXPECT_EQ(take(a, 0, 200), take(b, 0, 200));
  EXPECT_NE(take(a, 0, 200), take(c, 0, 200));
  // Random access agrees with sequential access (the epoch cache is only a cache).
  EXPECT_EQ(take(a, 170, 5), take(b, 170, 5));
  EXPECT_EQ(take(a, 3, 5), take(b, 3, 5));
}

TEST(SequenceSampler, EachEpochVisitsEveryWindowOnceAndReshuffles) {
  SequenceSampler sampler({40, 25, 1}, {}, 1);
  ASSERT_EQ(sampler.epoch_length(), 66);
  const auto epoch0 = take(sampler, 0, 66), epoch1 = take(sampler, 66, 66);
  for (const auto& epoch : {epoch0, epoch1}) {
    const std::set<std::pair<int, int64_t>> distinct(epoch.begin(), epoch.end());
    EXPECT_EQ(distinct.size(), 66u);
    for (const auto& [store, window] : epoch) EXPECT_LT(window, (std::vector<int64_t>{40, 25, 1})[store]);
  }
  EXPECT_NE(epoch0, epoch1);
}

TEST(SequenceSampler, WeightsGiveLargestRemainderShares) {
  // 20 windows per epoch; weights 3:1 -> 15 and 5 draws. Over two epochs store 0 makes 30 draws
  // = three passes over its 10 windows; store 1 makes 10 = one pass.
  SequenceSampler sampler({10, 10}, {3.0, 1.0}, 5);
  EXPECT_EQ(sampler.draws_per_epoch(), (std::vector<int64_t>{15, 5}));
  std::map<std::pair<int, int64_t>, int> counts;
  for (const auto& pick : take(sampler, 0, 40)) ++counts[pick];
  for (int64_t w = 0; w < 10; ++w) {
    EXPECT_EQ((counts[{0, w}]), 3) << "store 0 window " << w;
    EXPECT_EQ((counts[{1, w}]), 1) << "store 1 window " << w;
  }
  // 1:1:1 over 10 windows: 10/3 each, remainders all 1/3 -> the lower indices get the extra draw.
  SequenceSampler thirds({4, 3, 3}, {1.0, 1.0, 1.0}, 5);
  EXPECT_EQ(thirds.draws_per_epoch(), (std::vector<int64_t>{4, 3, 3}));
  SequenceSampler zero({5, 5}, {1.0, 0.0}, 5);
  for (const auto& pick : take(zero, 0, 30)) EXPECT_EQ(pick.first, 0);
}

}  // namespace
}  // namespace k2f::data
