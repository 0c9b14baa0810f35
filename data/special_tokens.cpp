#include "data/special_tokens.h"

#include <map>

namespace k2f::data {

std::vector<SpecialToken> k2_special_tokens(int32_t num_ranks) {
  static const std::map<int32_t, std::string> named = {
      {0, "[BOS]"},
      {1, "[EOS]"},
      {2, "<|im_end|>"},
      {3, "<|im_user|>"},
      {4, "<|im_assistant|>"},
      {6, "<|start_header_id|>"},
      {7, "<|end_header_id|>"},
      {9, "[EOT]"},
      {10, "<|im_system|>"},
      {11, "<|tool_calls_section_begin|>"},
      {12, "<|tool_calls_section_end|>"},
      {13, "<|tool_call_begin|>"},
      {14, "<|tool_call_argument_begin|>"},
      {15, "<|tool_call_end|>"},
      {17, "<|im_middle|>"},
      {22, "<think>"},
      {23, "</think>"},
  };
  std::vector<SpecialToken> tokens;
  for (int32_t offset = 0; offset < kNumK2SpecialTokens; ++offset) {
    const int32_t id = num_ranks + offset;
    const auto it = named.find(offset);
    tokens.push_back({id, it != named.end() ? it->second : "<|reserved_token_" + std::to_string(id) + "|>"});
  }
  return tokens;
}

}  // namespace k2f::data
