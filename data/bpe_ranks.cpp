#include "data/bpe_ranks.h"

#include <limits>
#include <queue>

#include "base/error.h"

namespace k2f::data {
namespace {

constexpr int32_t kNone = std::numeric_limits<int32_t>::max();

}  // namespace

uint64_t BpeRanks::hash(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ULL ^ bytes.size();
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ULL;
  return h ^ (h >> 29);
}

BpeRanks::BpeRanks(const std::vector<std::string>& tokens) {
  offsets_.reserve(tokens.size() + 1);
  offsets_.push_back(0);
  for (const auto& t : tokens) {
    arena_ += t;
    offsets_.push_back(static_cast<uint32_t>(arena_.size()));
  }
  size_t capacity = 16;
  while (capacity < tokens.size() * 2) capacity *= 2;
  slots_.assign(capacity, -1);
  mask_ = capacity - 1;
  for (int32_t rank = 0; rank < static_cast<int32_t>(tokens.size()); ++rank) {
    check(!tokens[rank].empty(), "BPE ranks: rank ", rank, " has empty bytes");
    uint64_t slot = hash(tokens[rank]) & mask_;
    while (slots_[slot] >= 0) {
      check(token(slots_[slot]) != tokens[rank], "BPE ranks: ranks ", slots_[slot], " and ", rank,
            " have the same bytes");
      slot = (slot + 1) & mask_;
    }
    slots_[slot] = rank;
  }
  for (int b = 0; b < 256; ++b) {
    byte_rank_[b] = find(std::string_view(reinterpret_cast<const char*>(&b), 1));
    check(byte_rank_[b] >= 0, "BPE ranks: no token for the single byte 0x", std::hex, b,
          " (a byte-level BPE needs all 256)");
  }
}

int32_t BpeRanks::find(std::string_view bytes) const {
  if (slots_.empty()) return -1;
  uint64_t slot = hash(bytes) & mask_;
  while (true) {
    const int32_t rank = slots_[slot];
    if (rank < 0) return -1;
    if (offsets_[rank + 1] - offsets_[rank] == bytes.size() && token(rank) == bytes) return rank;
    slot = (slot + 1) & mask_;
  }
}

void BpeRanks::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.size() == 1) {
    out.push_back(byte_rank_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  const int32_t whole = find(piece);
  if (whole >= 0) {
    out.push_back(whole);
    return;
  }
  if (piece.size() <= kHeapThreshold) encode_small(piece, out);
  else encode_large(piece, out);
}

// tiktoken's _byte_pair_merge: parts[i] = (start, rank of bytes from parts[i] to parts[i+2]).
void BpeRanks::encode_small(std::string_view piece, std::vector<int32_t>& out) const {
  struct Part {
    uint32_t start;
    int32_t rank;
  };
  Part parts[kHeapThreshold + 2];
  size_t count = piece.size() + 1;
  auto pair_rank = [&](size_t i) -> int32_t {
    if (i + 2 >= count) return kNone;
    const int32_t r = find(piece.substr(parts[i].start, parts[i + 2].start - parts[i].start));
    return r < 0 ? kNone : r;
  };
  for (size_t i = 0; i < count; ++i) parts[i] = {static_cast<uint32_t>(i), kNone};
  for (size_t i = 0; i + 2 < count; ++i) parts[i].rank = pair_rank(i);
  while (count > 2) {
    size_t best = 0;
    for (size_t i = 1; i + 2 < count; ++i)
      if (parts[i].rank < parts[best].rank) best = i;
    if (parts[best].rank == kNone) break;
    for (size_t i = best + 1; i + 1 < count; ++i) parts[i] = parts[i + 1];
    --count;
    parts[best].rank = pair_rank(best);
    if (best > 0) parts[best - 1].rank = pair_rank(best - 1);
  }
  for (size_t i = 0; i + 1 < count; ++i)
    out.push_back(find(piece.substr(parts[i].start, parts[i + 1].start - parts[i].start)));
}

// Same order as encode_small (lowest rank, then leftmost start) with a heap of candidate pairs
// over a linked list of parts; stale heap entries are skipped when popped.
void BpeRanks::encode_large(std::string_view piece, std::vector<int32_t>& out) const {
  const size_t n = piece.size();
  std::vector<uint32_t> next(n), prev(n);
  std::vector<uint32_t> version(n, 0);
  std::vector<bool> alive(n, true);
  for (size_t i = 0; i < n; ++i) next[i] = static_cast<uint32_t>(i + 1), prev[i] = static_cast<uint32_t>(i - 1);
  struct Candidate {
    int32_t rank;
    uint32_t start, version;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : start > o.start; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto push = [&](uint32_t i) {
    if (next[i] >= n) return;
    const uint32_t end = next[next[i]] < n ? next[next[i]] : static_cast<uint32_t>(n);
    const int32_t r = find(piece.substr(i, end - i));
    if (r >= 0) heap.push({r, i, version[i]});
  };
  for (uint32_t i = 0; i < n; ++i) push(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    if (!alive[c.start] || c.version != version[c.start]) continue;
    const uint32_t right = next[c.start];
    alive[right] = false;
    next[c.start] = next[right];
    if (next[right] < n) prev[next[right]] = c.start;
    ++version[c.start];
    push(c.start);
    if (c.start > 0) {
      const uint32_t left = prev[c.start];
      ++version[left];
      push(left);
    }
  }
  for (uint32_t i = 0; i < n; i = next[i]) {
    const uint32_t end = next[i] < n ? next[i] : static_cast<uint32_t>(n);
    out.push_back(find(piece.substr(i, end - i)));
  }
}

}  // namespace k2f::data
