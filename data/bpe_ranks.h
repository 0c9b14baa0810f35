// The mergeable ranks of a byte-level BPE (token bytes -> rank) and tiktoken's merge: a piece is
// split into bytes, then the adjacent pair whose concatenation has the lowest rank is merged
// (leftmost first on ties) until no pair is a token. Lookups use an open-addressing table over
// one byte arena (no std::string per probe); pieces longer than kHeapThreshold bytes use a heap
// with the same order, so a long whitespace run costs O(n log n) instead of O(n^2).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace k2f::data {

class BpeRanks {
 public:
  static constexpr size_t kHeapThreshold = 128;

  BpeRanks() = default;
  // tokens[r] holds the bytes of rank r; the bytes must be distinct and include every single byte.
  explicit BpeRanks(const std::vector<std::string>& tokens);

  // Rank of `bytes`, or -1 when it is not a token.
  int32_t find(std::string_view bytes) const;
  size_t size() const { return offsets_.empty() ? 0 : offsets_.size() - 1; }
  std::string_view token(int32_t rank) const {
    return std::string_view(arena_).substr(offsets_[rank], offsets_[rank + 1] - offsets_[rank]);
  }

  // Appends the ranks of `piece` after byte-pair merging.
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;

 private:
  void encode_small(std::string_view piece, std::vector<int32_t>& out) const;
  void encode_large(std::string_view piece, std::vector<int32_t>& out) const;
  static uint64_t hash(std::string_view bytes);

  std::string arena_;              // all token bytes, by rank
  std::vector<uint32_t> offsets_;  // rank r spans [offsets_[r], offsets_[r+1]) of arena_
  std::vector<int32_t> slots_;     // open addressing: rank or -1
  uint64_t mask_ = 0;
  int32_t byte_rank_[256] = {};
};

}  // namespace k2f::data
