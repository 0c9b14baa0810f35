// Fuzzes pre-tokenisation patterns in tiktoken's syntax (data/tiktoken_regex.cpp, the pattern a
// tokenizer directory ships): the input up to its first NUL byte is a pattern, the rest a text.
// The translator must refuse or translate without faults; a pattern PCRE2 compiles must split the
// text into pieces that concatenate to it exactly (or report an empty match as an error).
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "base/error.h"
#include "data/pretokenizer.h"
#include "data/tiktoken_regex.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\0');
  const std::string_view pattern = input.substr(0, split);
  const std::string_view text = split == std::string_view::npos ? std::string_view() : input.substr(split + 1);
  try {
    const k2f::data::Pretokenizer pretokenizer{std::string(pattern)};
    std::string joined;
    pretokenizer.split(text, [&](std::string_view piece) { joined += piece; });
    if (joined != text) __builtin_trap();
  } catch (const k2f::Error&) {
  }
  return 0;
}
