#include "data/sequence_sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "base/error.h"

namespace k2f::data {
namespace {

constexpr uint64_t kTagStorePass = 0x53544f5245ULL;  // "STORE"
constexpr uint64_t kTagEpoch = 0x45504f4348ULL;      // "EPOCH"
constexpr int kWindowBits = 48;

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Uniform in [0, n) without the modulo bias.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t threshold = (0 - n) % n;
  while (true) {
    const uint64_t x = rng();
    if (x >= threshold) return x % n;
  }
}

template <typename T>
void seeded_shuffle(std::vector<T>& values, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (size_t i = values.size(); i > 1; --i) std::swap(values[i - 1], values[uniform_below(rng, i)]);
}

// Largest-remainder split of `total` draws by weight (ties: lower store index first).
std::vector<int64_t> allocate_draws(const std::vector<int64_t>& windows, const std::vector<double>& weights) {
  const int64_t total = std::accumulate(windows.begin(), windows.end(), int64_t{0});
  if (weights.empty()) return windows;
  const double weight_sum = std::accumulate(weights.begin(), weights.end(), 0.0);
  std::vector<int64_t> draws(windows.size());
  std::vector<std::pair<double, size_t>> remainders;
  int64_t assigned = 0;
  for (size_t i = 0; i < windows.size(); ++i) {
    const double exact = static_cast<double>(total) * weights[i] / weight_sum;
    draws[i] = static_cast<int64_t>(std::floor(exact));
    assigned += draws[i];
    remainders.push_back({exact - static_cast<double>(draws[i]), i});
  }
  std::stable_sort(remainders.begin(), remainders.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t k = 0; assigned < total; ++k, ++assigned) ++draws[remainders[k % remainders.size()].second];
  return draws;
}

}  // namespace

uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  return splitmix64(splitmix64(splitmix64(splitmix64(a) ^ b) ^ c) ^ d);
}

std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> values(n);
  std::iota(values.begin(), values.end(), int64_t{0});
  seeded_shuffle(values, seed);
  return values;
}

SequenceSampler::SequenceSampler(std::vector<int64_t> windows_per_store, std::vector<double> weights, uint64_t seed)
    : windows_(std::move(windows_per_store)), seed_(seed) {
  check(!windows_.empty(), "sampler: no stores");
  check(windows_.size() < (1u << 15), "sampler: too many stores (", windows_.size(), ")");
  for (int64_t w : windows_) check(w > 0 && w < (int64_t{1} << kWindowBits), "sampler: window count ", w);
  check(weights.empty() || weights.size() == windows_.size(), "sampler: ", weights.size(), " weights for ",
        windows_.size(), " stores");
  draws_per_epoch_ = allocate_draws(windows_, weights);
  epoch_length_ = std::accumulate(draws_per_epoch_.begin(), draws_per_epoch_.end(), int64_t{0});
}

void SequenceSampler::build_epoch(int64_t epoch) {
  order_.clear();
  order_.reserve(epoch_length_);
  for (size_t store = 0; store < windows_.size(); ++store) {
    const int64_t n = windows_[store], first = epoch * draws_per_epoch_[store];
    int64_t pass = -1;
    std::vector<int64_t> permutation;
    for (int64_t draw = first; draw < first + draws_per_epoch_[store]; ++draw) {
      if (draw / n != pass) {
        pass = draw / n;
        permutation = seeded_permutation(n, mix_seed(seed_, kTagStorePass, store, static_cast<uint64_t>(pass)));
      }
      order_.push_back((static_cast<uint64_t>(store) << kWindowBits) | static_cast<uint64_t>(permutation[draw % n]));
    }
  }
  seeded_shuffle(order_, mix_seed(seed_, kTagEpoch, static_cast<uint64_t>(epoch)));
  cached_epoch_ = epoch;
}

SequencePick SequenceSampler::pick(int64_t global_index) {
  check(global_index >= 0, "sampler: negative index ", global_index);
  const int64_t epoch = global_index / epoch_length_;
  if (epoch != cached_epoch_) build_epoch(epoch);
  const uint64_t entry = order_[global_index % epoch_length_];
  return {static_cast<int32_t>(entry >> kWindowBits),
          static_cast<int64_t>(entry & ((uint64_t{1} << kWindowBits) - 1))};
}

}  // namespace k2f::data
