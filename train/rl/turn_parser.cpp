#include "train/rl/turn_parser.h"

#include <algorithm>

#include "base/error.h"

namespace k2f::train::rl {

TurnTokens TurnTokens::from(const data::Tokenizer& tokenizer) {
  const auto need = [&](const char* content) {
    const int32_t id = tokenizer.special_id(content);
    check(id >= 0, "the tokenizer has no special token \"", content, "\" (tool calls need it)");
    return id;
  };
  return {need("<think>"), need("</think>"), need("<|tool_calls_section_begin|>"), need("<|tool_calls_section_end|>"),
          need("<|tool_call_begin|>"), need("<|tool_call_argument_begin|>"), need("<|tool_call_end|>"),
          need("<|im_end|>")};
}

namespace {

std::string decode(const std::vector<int64_t>& turn, size_t begin, size_t end, const data::Tokenizer& tokenizer) {
  std::vector<int32_t> ids;
  for (size_t i = begin; i < end && i < turn.size(); ++i)
    if (turn[i] >= 0 && turn[i] < tokenizer.vocab_size()) ids.push_back(static_cast<int32_t>(turn[i]));
  return tokenizer.decode(ids);
}

}  // namespace

ParsedTurn parse_assistant_turn(const std::vector<int64_t>& turn, const TurnTokens& ids, const data::Tokenizer& tokenizer) {
  ParsedTurn out;
  const auto is_structure = [&](int64_t t) {
    return t == ids.think_begin || t == ids.think_end || t == ids.section_begin || t == ids.section_end ||
           t == ids.call_begin || t == ids.argument_begin || t == ids.call_end || t == ids.im_end;
  };
  const auto find = [&](int32_t id, size_t from) {
    return static_cast<size_t>(std::find(turn.begin() + std::min(from, turn.size()), turn.end(), id) - turn.begin());
  };
  const size_t n = turn.size();
  const size_t section = find(ids.section_begin, 0);
  const size_t end_of_text = std::min(section, find(ids.im_end, 0));

  // Thinking: <think> first, one </think> before the content.
  size_t content_begin = 0;
  if (n > 0 && turn[0] == ids.think_begin) {
    const size_t close = find(ids.think_end, 1);
    if (close < end_of_text) {
      bool clean = true;
      for (size_t i = 1; i < close; ++i) clean = clean && !is_structure(turn[i]);
      out.think_ok = clean;
      out.reasoning = decode(turn, 1, close, tokenizer);
      content_begin = close + 1;
    } else {
      content_begin = end_of_text;  // never closed: everything was reasoning
      out.reasoning = decode(turn, 1, end_of_text, tokenizer);
    }
  }
  for (size_t i = content_begin; i < end_of_text; ++i) out.think_ok = out.think_ok && !is_structure(turn[i]);
  out.content = decode(turn, content_begin, end_of_text, tokenizer);
  if (section >= n) return out;

  // The tool-call section.
  out.has_tool_section = true;
  size_t i = section + 1;
  const auto broken = [&](const std::string& problem) { out.calls.push_back({"", "", problem}); };
  while (i < n && turn[i] != ids.section_end) {
    if (turn[i] != ids.call_begin) {
      broken("expected <|tool_call_begin|> in the tool-call section");
      break;
    }
    const size_t argument = find(ids.argument_begin, i + 1), end = find(ids.call_end, i + 1);
    if (argument >= end || end >= n) {
      broken(end >= n ? "the call was never closed with <|tool_call_end|>"
                      : "the call has no <|tool_call_argument_begin|>");
      break;
    }
    bool clean = true;
    for (size_t k = i + 1; k < end; ++k) clean = clean && (k == argument || !is_structure(turn[k]));
    if (!clean) {
      broken("unexpected special token inside a tool call");
      break;
    }
    out.calls.push_back({decode(turn, i + 1, argument, tokenizer), decode(turn, argument + 1, end, tokenizer), ""});
    i = end + 1;
  }
  out.section_closed = i < n && turn[i] == ids.section_end;
  if (out.calls.empty()) broken("empty tool-call section");
  return out;
}

}  // namespace k2f::train::rl
