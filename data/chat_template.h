// The Kimi-K2 (Thinking) chat template, K2_REFERENCE.md section 6: an OpenAI-style conversation
// becomes token ids plus a loss mask that is 1 on what the assistant writes. Special tokens are
// looked up by name in the tokenizer (never hard-coded); the text between two special tokens is one
// ordinary encode, so message text that spells "<|im_end|>" can never forge a special token.
//
// Layout ("S" = special token, text otherwise; NAME = the message's "name" if given, else its role,
// as K2's template does):
//   tools     S<|im_system|> tool_declare S<|im_middle|> TOOLS_JSON S<|im_end|>        (tools non-empty)
//   default   S<|im_system|> system S<|im_middle|> kDefaultSystemPrompt S<|im_end|>  (messages[0] not system)
//   system    S<|im_system|> NAME S<|im_middle|> CONTENT S<|im_end|>
//   user      S<|im_user|> NAME S<|im_middle|> CONTENT S<|im_end|>
//   assistant S<|im_assistant|> NAME S<|im_middle|> S<think> REASONING S</think> CONTENT
//             [S<|tool_calls_section_begin|> (S<|tool_call_begin|> ID S<|tool_call_argument_begin|> ARGS
//              S<|tool_call_end|>)... S<|tool_calls_section_end|>] S<|im_end|>
//   tool      S<|im_system|> NAME S<|im_middle|> "## Return of " ID "\n" CONTENT S<|im_end|>
//
// Serialisation (byte-compatible with K2's Jinja template on the same input; key order is kept,
// which is why messages are nlohmann::ordered_json):
//   TOOLS_JSON  json.dumps(tools, separators=(',', ':'), ensure_ascii=False)  (template: tojson(separators))
//   ARGS        a string is used verbatim (it must parse to a JSON object); an object is written as
//               json.dumps(args, ensure_ascii=False), separators ", " and ": " (template: tojson)
//   ID          tool_calls[j].id when it is exactly "functions." + function.name + ":" + digits; any
//               other id is replaced by "functions.NAME:K", K = the 0-based index of the call among
//               all tool calls of the conversation, and tool messages naming the original id are
//               rendered with the replacement (a tool_call_id naming no earlier call is an error).
//
// Reasoning rule (keeps_reasoning, a pure function): let U be the last user message and L the last
// assistant message without tool calls before U. Assistant messages up to and including L render
// `<think></think>` (their reasoning is dropped, as K2's template does for history); those after L
// keep `<think>REASONING</think>`: the current turn after U with its interleaved tool calls, and an
// unfinished tool-use sequence before U. Applied to a whole conversation this renders every message
// exactly as the model saw its context while writing the last turn; applied to a generation prompt
// it is K2's own rule.
//
// Loss mask: 1 on everything after `<|im_assistant|>NAME<|im_middle|>` up to and including the
// closing <|im_end|> (think tags, reasoning, content, tool-call tokens), except the empty
// `<think></think>` of an assistant message whose reasoning was dropped: the assistant never wrote
// that empty pair, and training on it would teach the model to skip thinking. 0 on everything else
// (system, tool_declare, user, tool results, role headers).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/tokenizer.h"

namespace k2f::data {

// Kimi's default system prompt, used when the first message is not a system message.
extern const char* const kDefaultSystemPrompt;

enum class ChatRole { system, user, assistant, tool };

struct ChatToolCall {
  std::string id;         // as rendered: "functions.NAME:IDX"
  std::string name;       // function name
  std::string arguments;  // as rendered: JSON text of an object
};

// One validated message, every field in its rendered form.
struct ChatMessage {
  ChatRole role = ChatRole::user;
  std::string header;        // NAME between the role token and <|im_middle|>
  std::string content;       // text parts joined; "" for an assistant message without content
  std::string reasoning;     // assistant only
  std::vector<ChatToolCall> tool_calls;  // assistant only
  std::string tool_call_id;  // tool only: the rendered id of the call it answers
};

struct ChatConversation {
  std::vector<ChatMessage> messages;
  std::string tools_json;  // "" when no tools are declared
};

struct RenderedChat {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> loss_mask;  // same length; 1 where the assistant writes the token
};

// Validates OpenAI-style `messages` (an array) and `tools` (null or an array of objects) into their
// rendered form. Errors name the message index and field: `messages[3].tool_calls[0].function.
// arguments: not valid JSON (...)`.
ChatConversation parse_chat(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools);
// The same for one JSONL record: an object with "messages" and optional "tools".
ChatConversation parse_chat_record(const nlohmann::ordered_json& record);

struct ReasoningShape {
  ChatRole role = ChatRole::user;
  bool has_tool_calls = false;
};
// keep[i] is true iff message i is an assistant message that keeps its reasoning (rule above).
std::vector<bool> keeps_reasoning(const std::vector<ReasoningShape>& messages);

// json.dumps(value, separators=(item_separator, key_separator), ensure_ascii=False): keys in their
// stored order, strings escaped as Python does (\", \\, \b \f \n \r \t, other controls \u00xx),
// non-ASCII written as UTF-8; numbers as nlohmann writes them.
std::string dump_json_python(const nlohmann::ordered_json& value, const std::string& item_separator,
                             const std::string& key_separator);

class ChatTemplate {
 public:
  // Looks up every special token the layout needs; a missing one is an error naming it. The
  // tokenizer must outlive the template.
  explicit ChatTemplate(const Tokenizer& tokenizer);

  RenderedChat render(const ChatConversation& chat) const;
  // The conversation followed by `<|im_assistant|>assistant<|im_middle|>` (and `<think>` when
  // open_think), from which the model generates its next message.
  std::vector<int32_t> render_generation_prompt(const ChatConversation& chat, bool open_think = false) const;

  // Resumes a generation paused after `<|tool_calls_section_end|>`: the assistant's closing
  // <|im_end|>, each tool message (role tool, rendered as in a conversation) and the next
  // `<|im_assistant|>assistant<|im_middle|>`. Appended to the paused tokens this equals the
  // generation prompt of the conversation that ends with those tool messages.
  std::vector<int32_t> render_tool_results(const std::vector<ChatMessage>& tool_messages) const;

  RenderedChat render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools = nullptr) const {
    return render(parse_chat(messages, tools));
  }
  std::vector<int32_t> render_generation_prompt(const nlohmann::ordered_json& messages,
                                                const nlohmann::ordered_json& tools = nullptr,
                                                bool open_think = false) const {
    return render_generation_prompt(parse_chat(messages, tools), open_think);
  }

 private:
  struct SpecialIds {
    int32_t im_system, im_user, im_assistant, im_middle, im_end;
    int32_t section_begin, section_end, call_begin, argument_begin, call_end;
    int32_t think_begin, think_end;
  };
  class Writer;
  void render_messages(const ChatConversation& chat, Writer& out) const;
  void render_assistant(const ChatMessage& message, bool keep_reasoning, Writer& out) const;

  const Tokenizer* tokenizer_;
  SpecialIds ids_;
};

}  // namespace k2f::data
