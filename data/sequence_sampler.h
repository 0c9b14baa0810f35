// The one global order of packed sequences, a pure function of (seed, epoch): every store is
// cut into windows of seq_len + 1 tokens; an epoch holds sum(windows) sequences, store i taking
// a share proportional to its weight (largest remainder; no weights: its window count); store i
// draws its windows through its own seeded permutation, pass after pass (an over-weighted store
// repeats, an under-weighted one continues next epoch); the epoch's draws are then shuffled with
// a seeded permutation. Only std::mt19937_64 and explicit integer arithmetic are used, so the
// order is the same on every machine and standard library.
#pragma once

#include <cstdint>
#include <vector>

namespace k2f::data {

struct SequencePick {
  int32_t store = 0;
  int64_t window = 0;  // the window covers tokens [window * (seq_len+1), (window+1) * (seq_len+1))
};

class SequenceSampler {
 public:
  SequenceSampler(std::vector<int64_t> windows_per_store, std::vector<double> weights, uint64_t seed);

  // The sequence at `global_index` of the global order (keeps the current epoch cached, so
  // calls should mostly move forward).
  SequencePick pick(int64_t global_index);

  int64_t epoch_length() const { return epoch_length_; }
  const std::vector<int64_t>& draws_per_epoch() const { return draws_per_epoch_; }

 private:
  void build_epoch(int64_t epoch);

  std::vector<int64_t> windows_;
  std::vector<int64_t> draws_per_epoch_;
  uint64_t seed_;
  int64_t epoch_length_ = 0;
  int64_t cached_epoch_ = -1;
  std::vector<uint64_t> order_;  // (store << 48) | window for each position of the cached epoch
};

// A seeded uniform permutation of 0..n-1 (Fisher-Yates over mt19937_64 with rejection sampling).
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed);

// Mixes several words into one 64-bit seed (splitmix64 steps).
uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c = 0, uint64_t d = 0);

}  // namespace k2f::data
