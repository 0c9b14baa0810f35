// Fuzzes the chat template: any JSON record (OpenAI-style messages and tools, wrong types,
// dangling tool ids, arguments that are not JSON) is either rejected with a message or rendered,
// and a rendered conversation always has one loss-mask entry per token.
#include <cstdint>
#include <exception>

#include <nlohmann/json.hpp>

#include "data/chat_template.h"
#include "data/tokenizer.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto tokenizer = k2f::data::Tokenizer::load(k2f::fuzz::source_dir() + "/assets/tokenizer");
  static const k2f::data::ChatTemplate chat(tokenizer);
  const auto record = nlohmann::ordered_json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (record.is_discarded()) return 0;
  try {
    const auto conversation = k2f::data::parse_chat_record(record);
    const auto rendered = chat.render(conversation);
    if (rendered.tokens.size() != rendered.loss_mask.size()) __builtin_trap();
    (void)chat.render_generation_prompt(conversation, /*open_think=*/true);
  } catch (const std::exception&) {
  }
  return 0;
}
