#include "data/chat_template.h"

#include <map>

#include "base/error.h"

namespace k2f::data {

const char* const kDefaultSystemPrompt = "You are Kimi, an AI assistant created by Moonshot AI.";

namespace {

using OJson = nlohmann::ordered_json;

std::string at(size_t index) { return "messages[" + std::to_string(index) + "]"; }

std::string describe(const OJson& value) {
  const std::string text = value.dump();
  return text.size() > 60 ? text.substr(0, 60) + "..." : text;
}

const char* role_name(ChatRole role) {
  switch (role) {
    case ChatRole::system: return "system";
    case ChatRole::user: return "user";
    case ChatRole::assistant: return "assistant";
    case ChatRole::tool: return "tool";
  }
  return "?";
}

ChatRole parse_role(const OJson& message, const std::string& where) {
  check(message.contains("role"), where, ".role: missing");
  const OJson& role = message["role"];
  check(role.is_string(), where, ".role: expected a string, got ", describe(role));
  const std::string name = role.get<std::string>();
  for (ChatRole r : {ChatRole::system, ChatRole::user, ChatRole::assistant, ChatRole::tool})
    if (name == role_name(r)) return r;
  fail(where, ".role: unknown role \"", name, "\" (expected system, user, assistant or tool)");
}

// A string, or OpenAI content parts [{"type": "text", "text": ...}] joined; absent or null is
// allowed only where `optional`.
std::string parse_content(const OJson& message, const std::string& where, bool optional, ChatRole role) {
  if (!message.contains("content") || message["content"].is_null()) {
    check(optional, where, ".content: missing (a ", role_name(role), " message needs a string content)");
    return "";
  }
  const OJson& content = message["content"];
  if (content.is_string()) return content.get<std::string>();
  check(content.is_array(), where, ".content: expected a string or an array of text parts, got ", describe(content));
  std::string text;
  for (size_t p = 0; p < content.size(); ++p) {
    const std::string part = where + ".content[" + std::to_string(p) + "]";
    const OJson& item = content[p];
    check(item.is_object() && item.contains("type") && item["type"].is_string(), part,
          ".type: expected an object with a string \"type\", got ", describe(item));
    check(item["type"] == "text", part, ".type: only text parts are supported, got ", describe(item["type"]));
    check(item.contains("text") && item["text"].is_string(), part, ".text: missing or not a string");
    text += item["text"].get<std::string>();
  }
  return text;
}

// Optional string field; absent and null give "".
std::string optional_string(const OJson& object, const char* key, const std::string& where) {
  if (!object.contains(key) || object[key].is_null()) return "";
  check(object[key].is_string(), where, ".", key, ": expected a string, got ", describe(object[key]));
  return object[key].get<std::string>();
}

std::string parse_arguments(const OJson& function, const std::string& where) {
  check(function.contains("arguments") && !function["arguments"].is_null(), where,
        ".arguments: missing (a JSON object, or a string holding one)");
  const OJson& arguments = function["arguments"];
  if (arguments.is_object()) return dump_json_python(arguments, ", ", ": ");
  check(arguments.is_string(), where, ".arguments: expected a JSON object or a string holding one, got ",
        describe(arguments));
  const std::string text = arguments.get<std::string>();
  OJson parsed;
  try {
    parsed = OJson::parse(text);
  } catch (const OJson::exception& e) {
    fail(where, ".arguments: not valid JSON (", e.what(), "): \"", text.substr(0, 60), "\"");
  }
  check(parsed.is_object(), where, ".arguments: expected a JSON object, got ", describe(parsed));
  return text;  // verbatim: the bytes the model wrote
}

bool is_k2_call_id(const std::string& id, const std::string& name) {
  const std::string prefix = "functions." + name + ":";
  if (id.size() <= prefix.size() || id.compare(0, prefix.size(), prefix) != 0) return false;
  for (size_t i = prefix.size(); i < id.size(); ++i)
    if (id[i] < '0' || id[i] > '9') return false;
  return true;
}

// Parses message `index`'s tool calls; `rendered_ids` maps each original id to its rendered form
// and `num_calls` counts the calls of the conversation so far.
std::vector<ChatToolCall> parse_tool_calls(const OJson& message, const std::string& where,
                                           std::map<std::string, std::string>& rendered_ids, int64_t& num_calls) {
  const OJson& calls = message["tool_calls"];
  check(calls.is_array(), where, ".tool_calls: expected an array, got ", describe(calls));
  std::vector<ChatToolCall> out;
  for (size_t j = 0; j < calls.size(); ++j) {
    const std::string call_at = where + ".tool_calls[" + std::to_string(j) + "]";
    const OJson& call = calls[j];
    check(call.is_object(), call_at, ": expected an object, got ", describe(call));
    const std::string type = optional_string(call, "type", call_at);
    check(type.empty() || type == "function", call_at, ".type: expected \"function\", got \"", type, "\"");
    check(call.contains("function") && call["function"].is_object(), call_at,
          ".function: missing or not an object (expected {\"name\": ..., \"arguments\": ...})");
    const OJson& function = call["function"];
    const std::string function_at = call_at + ".function";
    ChatToolCall parsed;
    parsed.name = optional_string(function, "name", function_at);
    check(!parsed.name.empty(), function_at, ".name: missing or empty");
    parsed.arguments = parse_arguments(function, function_at);
    const std::string id = optional_string(call, "id", call_at);
    parsed.id = is_k2_call_id(id, parsed.name) ? id : "functions." + parsed.name + ":" + std::to_string(num_calls);
    if (!id.empty()) rendered_ids[id] = parsed.id;
    rendered_ids[parsed.id] = parsed.id;
    ++num_calls;
    out.push_back(std::move(parsed));
  }
  return out;
}

}  // namespace

ChatConversation parse_chat(const OJson& messages, const OJson& tools) {
  check(messages.is_array(), "messages: expected an array of message objects, got ", describe(messages));
  ChatConversation chat;
  if (!tools.is_null()) {
    check(tools.is_array(), "tools: expected an array of tool objects, got ", describe(tools));
    for (size_t t = 0; t < tools.size(); ++t)
      check(tools[t].is_object(), "tools[", t, "]: expected an object, got ", describe(tools[t]));
    if (!tools.empty()) chat.tools_json = dump_json_python(tools, ",", ":");
  }
  std::map<std::string, std::string> rendered_ids;
  int64_t num_calls = 0;
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string where = at(i);
    const OJson& m = messages[i];
    check(m.is_object(), where, ": expected an object with \"role\" and \"content\", got ", describe(m));
    ChatMessage message;
    message.role = parse_role(m, where);
    const bool assistant = message.role == ChatRole::assistant;
    message.header = optional_string(m, "name", where);
    if (message.header.empty()) message.header = role_name(message.role);
    message.content = parse_content(m, where, assistant, message.role);
    message.reasoning = optional_string(m, "reasoning_content", where);
    check(assistant || message.reasoning.empty(), where, ".reasoning_content: only assistant messages carry ",
          "reasoning (this one is ", role_name(message.role), ")");
    const bool has_calls = m.contains("tool_calls") && !m["tool_calls"].is_null();
    check(assistant || !has_calls, where, ".tool_calls: only assistant messages make tool calls (this one is ",
          role_name(message.role), ")");
    if (has_calls) message.tool_calls = parse_tool_calls(m, where, rendered_ids, num_calls);
    if (message.role == ChatRole::tool) {
      const std::string id = optional_string(m, "tool_call_id", where);
      check(!id.empty(), where, ".tool_call_id: missing (a tool message answers a call by its id)");
      const auto found = rendered_ids.find(id);
      check(found != rendered_ids.end(), where, ".tool_call_id: \"", id, "\" names no tool call of an earlier ",
            "assistant message");
      message.tool_call_id = found->second;
    }
    chat.messages.push_back(std::move(message));
  }
  return chat;
}

ChatConversation parse_chat_record(const OJson& record) {
  check(record.is_object(), "expected a conversation object {\"messages\": [...], \"tools\": [...]}, got ",
        describe(record));
  check(record.contains("messages"), "messages: missing (a conversation is {\"messages\": [...], \"tools\": [...]})");
  return parse_chat(record["messages"], record.contains("tools") ? record["tools"] : OJson());
}

std::vector<bool> keeps_reasoning(const std::vector<ReasoningShape>& messages) {
  const int64_t n = static_cast<int64_t>(messages.size());
  int64_t last_user = -1;
  for (int64_t i = 0; i < n; ++i)
    if (messages[i].role == ChatRole::user) last_user = i;
  int64_t last_answer = -1;  // L: the last assistant message without tool calls before last_user
  for (int64_t i = 0; i < last_user; ++i)
    if (messages[i].role == ChatRole::assistant && !messages[i].has_tool_calls) last_answer = i;
  std::vector<bool> keep(messages.size(), false);
  for (int64_t i = last_answer + 1; i < n; ++i) keep[i] = messages[i].role == ChatRole::assistant;
  return keep;
}

std::string dump_json_python(const OJson& value, const std::string& item_separator,
                             const std::string& key_separator) {
  if (value.is_object()) {
    std::string out = "{";
    bool first = true;
    for (const auto& [key, item] : value.items()) {
      if (!first) out += item_separator;
      first = false;
      out += OJson(key).dump() + key_separator + dump_json_python(item, item_separator, key_separator);
    }
    return out + "}";
  }
  if (value.is_array()) {
    std::string out = "[";
    for (size_t i = 0; i < value.size(); ++i) {
      if (i > 0) out += item_separator;
      out += dump_json_python(value[i], item_separator, key_separator);
    }
    return out + "]";
  }
  return value.dump();  // scalars: nlohmann escapes strings exactly as json.dumps(ensure_ascii=False)
}

// Appends special tokens and ordinary text with their loss-mask values.
class ChatTemplate::Writer {
 public:
  explicit Writer(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  void special(int32_t id, uint8_t mask) {
    out.tokens.push_back(id);
    out.loss_mask.push_back(mask);
  }
  void text(const std::string& text, uint8_t mask) {
    tokenizer_.encode_ordinary_append(text, out.tokens);
    out.loss_mask.resize(out.tokens.size(), mask);
  }
  RenderedChat out;

 private:
  const Tokenizer& tokenizer_;
};

ChatTemplate::ChatTemplate(const Tokenizer& tokenizer) : tokenizer_(&tokenizer) {
  const auto need = [&](const char* content) {
    const int32_t id = tokenizer.special_id(content);
    check(id >= 0, "the tokenizer has no special token \"", content, "\" (the K2 chat template needs it; special ",
          "tokens come from tokenizer_config.json added_tokens_decoder)");
    return id;
  };
  ids_.im_system = need("<|im_system|>");
  ids_.im_user = need("<|im_user|>");
  ids_.im_assistant = need("<|im_assistant|>");
  ids_.im_middle = need("<|im_middle|>");
  ids_.im_end = need("<|im_end|>");
  ids_.section_begin = need("<|tool_calls_section_begin|>");
  ids_.section_end = need("<|tool_calls_section_end|>");
  ids_.call_begin = need("<|tool_call_begin|>");
  ids_.argument_begin = need("<|tool_call_argument_begin|>");
  ids_.call_end = need("<|tool_call_end|>");
  ids_.think_begin = need("<think>");
  ids_.think_end = need("</think>");
}

void ChatTemplate::render_assistant(const ChatMessage& message, bool keep_reasoning, Writer& out) const {
  const uint8_t think_mask = keep_reasoning ? 1 : 0;
  out.special(ids_.think_begin, think_mask);
  if (keep_reasoning) out.text(message.reasoning, 1);
  out.special(ids_.think_end, think_mask);
  out.text(message.content, 1);
  if (!message.tool_calls.empty()) {
    out.special(ids_.section_begin, 1);
    for (const auto& call : message.tool_calls) {
      out.special(ids_.call_begin, 1);
      out.text(call.id, 1);
      out.special(ids_.argument_begin, 1);
      out.text(call.arguments, 1);
      out.special(ids_.call_end, 1);
    }
    out.special(ids_.section_end, 1);
  }
  out.special(ids_.im_end, 1);
}

void ChatTemplate::render_messages(const ChatConversation& chat, Writer& out) const {
  const auto turn = [&](int32_t role_id, const std::string& header, const std::string& body) {
    out.special(role_id, 0);
    out.text(header, 0);
    out.special(ids_.im_middle, 0);
    out.text(body, 0);
    out.special(ids_.im_end, 0);
  };
  if (!chat.tools_json.empty()) turn(ids_.im_system, "tool_declare", chat.tools_json);
  if (chat.messages.empty() || chat.messages[0].role != ChatRole::system)
    turn(ids_.im_system, "system", kDefaultSystemPrompt);
  std::vector<ReasoningShape> shapes;
  for (const auto& m : chat.messages) shapes.push_back({m.role, !m.tool_calls.empty()});
  const std::vector<bool> keep = keeps_reasoning(shapes);
  for (size_t i = 0; i < chat.messages.size(); ++i) {
    const ChatMessage& m = chat.messages[i];
    switch (m.role) {
      case ChatRole::system: turn(ids_.im_system, m.header, m.content); break;
      case ChatRole::user: turn(ids_.im_user, m.header, m.content); break;
      case ChatRole::tool: turn(ids_.im_system, m.header, "## Return of " + m.tool_call_id + "\n" + m.content); break;
      case ChatRole::assistant:
        out.special(ids_.im_assistant, 0);
        out.text(m.header, 0);
        out.special(ids_.im_middle, 0);
        render_assistant(m, keep[i], out);
        break;
    }
  }
}

RenderedChat ChatTemplate::render(const ChatConversation& chat) const {
  Writer out(*tokenizer_);
  render_messages(chat, out);
  return std::move(out.out);
}

std::vector<int32_t> ChatTemplate::render_generation_prompt(const ChatConversation& chat, bool open_think) const {
  Writer out(*tokenizer_);
  render_messages(chat, out);
  out.special(ids_.im_assistant, 0);
  out.text("assistant", 0);
  out.special(ids_.im_middle, 0);
  if (open_think) out.special(ids_.think_begin, 0);
  return std::move(out.out.tokens);
}

std::vector<int32_t> ChatTemplate::render_tool_results(const std::vector<ChatMessage>& tool_messages) const {
  Writer out(*tokenizer_);
  out.special(ids_.im_end, 0);
  for (const auto& m : tool_messages) {
    check(m.role == ChatRole::tool, "render_tool_results: expected tool messages only");
    out.special(ids_.im_system, 0);
    out.text(m.header, 0);
    out.special(ids_.im_middle, 0);
    out.text("## Return of " + m.tool_call_id + "\n" + m.content, 0);
    out.special(ids_.im_end, 0);
  }
  out.special(ids_.im_assistant, 0);
  out.text("assistant", 0);
  out.special(ids_.im_middle, 0);
  return std::move(out.out.tokens);
}

}  // namespace k2f::data
