// Reads one assistant turn as the model sampled it, token by token, against the K2 layout
// (K2_REFERENCE.md section 6): `<think>REASONING</think>CONTENT` then optionally
// `<|tool_calls_section_begin|>(<|tool_call_begin|>ID<|tool_call_argument_begin|>ARGS<|tool_call_end|>)...
// <|tool_calls_section_end|>`. Parsing works on special-token ids, never on text, so a model
// that writes "<|tool_call_begin|>" as ordinary text cannot forge structure. Broken structure is
// reported as a call with a `problem` (answered by a tool message), not as an exception.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "train/rl/tools.h"

namespace k2f::train::rl {

struct TurnTokens {
  int32_t think_begin, think_end, section_begin, section_end, call_begin, argument_begin, call_end, im_end;
  static TurnTokens from(const data::Tokenizer& tokenizer);  // throws naming a missing special token
};

struct ParsedTurn {
  bool think_ok = false;        // starts with <think>, closes it once, no stray structure tokens inside
  std::string reasoning;
  std::string content;          // between </think> and the tool-call section (or the end)
  bool has_tool_section = false;
  bool section_closed = false;  // the section ended with <|tool_calls_section_end|>
  std::vector<ToolCallText> calls;
};

// `turn`: the tokens after `<|im_assistant|>assistant<|im_middle|>`, up to and including the stop
// token (<|tool_calls_section_end|> or <|im_end|>) or the budget cut.
ParsedTurn parse_assistant_turn(const std::vector<int64_t>& turn, const TurnTokens& ids, const data::Tokenizer& tokenizer);

}  // namespace k2f::train::rl
