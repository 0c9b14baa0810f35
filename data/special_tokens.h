// Kimi-K2's special-token layout: 256 ids right after the mergeable ranks (K2: ranks end at
// 163584, so [BOS] = 163584). The trainer appends them at the same offsets after its own ranks,
// so a small tokenizer keeps K2's structure; readers always take ids from tokenizer_config.json.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace k2f::data {

struct SpecialToken {
  int32_t id = 0;
  std::string content;
};

constexpr int32_t kNumK2SpecialTokens = 256;

// The 256 K2 special tokens for a tokenizer with `num_ranks` ranks: named ones at their K2
// offsets (<think>/</think> at offsets 22/23, K2-Thinking's 163606/163607), the others
// <|reserved_token_{id}|> with the absolute id, as K2's tokenization_kimi.py names them.
std::vector<SpecialToken> k2_special_tokens(int32_t num_ranks);

}  // namespace k2f::data
