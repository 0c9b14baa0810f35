// Byte-level BPE training: the 256 single bytes are ranks 0..255, then each step merges the
// adjacent pair with the highest count over the pre-tokenised pieces of the corpus (ties: the
// smallest left id, then the smallest right id), so the same corpus always gives the same file.
// Counts are updated incrementally (only pieces containing the merged pair are rescanned).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "data/tokenizer.h"

namespace k2f::data {

struct BpeTrainerOptions {
  int64_t vocab_size = 4352;  // all ids: mergeable ranks + the 256 K2 special tokens
  std::string pattern;        // empty: kimi_pattern()
  void validate() const;      // "--vocab-size (300) must be at least 512 (256 bytes + 256 special tokens)"
};

class BpeTrainer {
 public:
  explicit BpeTrainer(BpeTrainerOptions options);

  // Pre-tokenises `text` and counts its pieces.
  void add_text(std::string_view text);
  // Runs the merges; the result carries the K2 special tokens after its ranks.
  Tokenizer train() const;

  int64_t num_pieces() const { return static_cast<int64_t>(piece_counts_.size()); }

 private:
  BpeTrainerOptions options_;
  Pretokenizer pretokenizer_;
  std::unordered_map<std::string, int64_t> piece_counts_;
};

}  // namespace k2f::data
