#include "data/bpe_trainer.h"

#include <algorithm>
#include <map>
#include <queue>
#include <tuple>

#include "base/error.h"
#include "base/log.h"

namespace k2f::data {
namespace {

using Pair = std::pair<int32_t, int32_t>;

uint64_t pair_key(int32_t a, int32_t b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }

struct Word {
  std::vector<int32_t> symbols;
  int64_t count;
};

// The merge loop over counted words; tokens grows with each new rank.
class MergeState {
 public:
  MergeState(std::vector<Word> words, std::vector<std::string>& tokens) : words_(std::move(words)), tokens_(tokens) {
    for (int32_t w = 0; w < static_cast<int32_t>(words_.size()); ++w) add_pairs(w, +1);
    for (const auto& [key, count] : pair_counts_) push(key, count);
    for (const auto& t : tokens_) ids_by_bytes_.emplace(t, static_cast<int32_t>(&t - tokens_.data()));
  }

  // Performs the best merge; false when no pair is left.
  bool merge_best() {
    while (!heap_.empty()) {
      const auto [count, neg_a, neg_b] = heap_.top();
      heap_.pop();
      const uint64_t key = pair_key(-neg_a, -neg_b);
      const auto it = pair_counts_.find(key);
      if (it == pair_counts_.end() || it->second != count || count <= 0) continue;
      apply(-neg_a, -neg_b);
      return true;
    }
    return false;
  }

 private:
  void push(uint64_t key, int64_t count) {
    if (count > 0) heap_.emplace(count, -static_cast<int32_t>(key >> 32), -static_cast<int32_t>(key & 0xffffffffu));
  }

  void add_pairs(int32_t w, int sign) {
    const auto& s = words_[w].symbols;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const uint64_t key = pair_key(s[i], s[i + 1]);
      pair_counts_[key] += sign * words_[w].count;
      if (sign > 0) where_[key].push_back(w);
      touched_.push_back(key);
    }
  }

  void apply(int32_t a, int32_t b) {
    const std::string bytes = tokens_[a] + tokens_[b];
    auto [it, is_new] = ids_by_bytes_.emplace(bytes, static_cast<int32_t>(tokens_.size()));
    if (is_new) tokens_.push_back(bytes);
    const int32_t merged = it->second;
    std::vector<int32_t> affected = std::move(where_[pair_key(a, b)]);
    where_.erase(pair_key(a, b));
    std::sort(affected.begin(), affected.end());
    affected.erase(std::unique(affected.begin(), affected.end()), affected.end());
    touched_.clear();
    for (int32_t w : affected) {
      auto& s = words_[w].symbols;
      std::vector<int32_t> next;
      next.reserve(s.size());
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          next.push_back(merged);
          ++i;
        } else {
          next.push_back(s[i]);
        }
      }
      if (next.size() == s.size()) continue;  // stale entry: the pair left this word earlier
      add_pairs(w, -1);
      s = std::move(next);
      add_pairs(w, +1);
    }
    std::sort(touched_.begin(), touched_.end());
    touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
    for (uint64_t key : touched_) push(key, pair_counts_[key]);
  }

  std::vector<Word> words_;
  std::vector<std::string>& tokens_;
  std::unordered_map<std::string, int32_t> ids_by_bytes_;
  std::unordered_map<uint64_t, int64_t> pair_counts_;
  std::unordered_map<uint64_t, std::vector<int32_t>> where_;
  std::vector<uint64_t> touched_;
  std::priority_queue<std::tuple<int64_t, int32_t, int32_t>> heap_;  // (count, -left, -right)
};

}  // namespace

void BpeTrainerOptions::validate() const {
  check(vocab_size >= 256 + kNumK2SpecialTokens, "--vocab-size (", vocab_size, ") must be at least ",
        256 + kNumK2SpecialTokens, " (256 byte tokens + ", kNumK2SpecialTokens, " special tokens)");
  check(vocab_size <= (1LL << 31) - 1, "--vocab-size (", vocab_size, ") must fit in int32");
}

BpeTrainer::BpeTrainer(BpeTrainerOptions options)
    : options_((options.validate(), std::move(options))),
      pretokenizer_(options_.pattern.empty() ? kimi_pattern() : options_.pattern) {}

void BpeTrainer::add_text(std::string_view text) {
  pretokenizer_.split(text, [&](std::string_view piece) { ++piece_counts_[std::string(piece)]; });
}

Tokenizer BpeTrainer::train() const {
  std::map<std::string, int64_t> sorted(piece_counts_.begin(), piece_counts_.end());  // order independent of hashing
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (const auto& [piece, count] : sorted) {
    Word word{{}, count};
    for (unsigned char c : piece) word.symbols.push_back(c);
    words.push_back(std::move(word));
  }
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.emplace_back(1, static_cast<char>(b));
  const size_t target = static_cast<size_t>(options_.vocab_size - kNumK2SpecialTokens);
  MergeState state(std::move(words), tokens);
  while (tokens.size() < target && state.merge_best()) {
  }
  if (tokens.size() < target)
    log::warn("tokenizer train: the corpus supports only ", tokens.size(), " ranks (asked for ", target,
              "); vocabulary is ", tokens.size() + kNumK2SpecialTokens);
  const int32_t num_ranks = static_cast<int32_t>(tokens.size());
  return Tokenizer(std::move(tokens), k2_special_tokens(num_ranks),
                   options_.pattern.empty() ? kimi_pattern() : options_.pattern, "[EOS]");
}

}  // namespace k2f::data
