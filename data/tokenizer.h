// A tiktoken-format BPE tokenizer (Kimi-K2's format). A tokenizer directory holds
//   tiktoken.model         one "base64(bytes) rank" line per mergeable token, ranks 0..n-1
//   tokenizer_config.json  HF layout; added_tokens_decoder {"id": {"content": ..}} = special tokens
//   pattern.txt            optional pre-tokenisation regex in tiktoken's syntax; else the pat_str of a
//                          released tokenization_kimi.py; else kimi_pattern()
// Encoding is tiktoken's: split with the regex, then byte-pair merge each piece by lowest rank.
// Special tokens are produced only for the ids a caller allows; decode returns the exact bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "data/bpe_ranks.h"
#include "data/pretokenizer.h"
#include "data/special_tokens.h"

namespace k2f::data {

class Tokenizer {
 public:
  // Special ids sit just above the ranks (K2: 256 of them); a far larger gap is a broken config,
  // refused before it sizes the id table.
  static constexpr int32_t kMaxSpecialIdSpan = 1 << 16;

  // tokens[r] = bytes of rank r; specials must have ids >= tokens.size(); eos_content names one.
  Tokenizer(std::vector<std::string> tokens, std::vector<SpecialToken> specials, std::string pattern,
            std::string eos_content = "[EOS]");

  // Reads and checks a tokenizer directory; errors name the file, the line or key, and the fault.
  static Tokenizer load(const std::string& dir);
  // Writes the three files into a temporary directory renamed to `dir` (which must not exist).
  void save(const std::string& dir) const;

  // Ordinary text: never produces special ids (special-token text is encoded as plain bytes).
  std::vector<int32_t> encode(std::string_view text) const;
  // Special tokens whose ids are in `allowed_special` are recognised (leftmost, then longest).
  std::vector<int32_t> encode(std::string_view text, const std::unordered_set<int32_t>& allowed_special) const;
  void encode_ordinary_append(std::string_view text, std::vector<int32_t>& out) const;
  // Exact bytes; throws naming the position of an id outside the vocabulary.
  std::string decode(const std::vector<int32_t>& ids) const;

  int32_t num_ranks() const { return static_cast<int32_t>(ranks_.size()); }
  int32_t vocab_size() const { return vocab_size_; }
  int32_t eos_id() const { return eos_id_; }
  const std::vector<SpecialToken>& special_tokens() const { return specials_; }
  std::unordered_set<int32_t> all_special_ids() const;
  // Id of the special token with this content, or -1.
  int32_t special_id(const std::string& content) const;
  const std::string& pattern() const { return pretokenizer_->pattern(); }
  const std::vector<std::string>& tokens() const { return tokens_; }
  // "sha256:<hex>" over a canonical form of ranks, special tokens and pattern (not file layout).
  const std::string& hash() const { return hash_; }

 private:
  std::string canonical_form() const;
  std::string tiktoken_model_text() const;
  std::string config_json_text() const;

  std::vector<std::string> tokens_;
  BpeRanks ranks_;
  std::vector<SpecialToken> specials_;
  std::vector<std::string> id_bytes_;  // decode table for special ids (offset by num_ranks)
  std::shared_ptr<Pretokenizer> pretokenizer_;
  std::string eos_content_;
  int32_t eos_id_ = -1;
  int32_t vocab_size_ = 0;
  std::string hash_;
};

}  // namespace k2f::data
