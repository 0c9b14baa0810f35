// Fuzzes the tokenizer twice over. Mode byte even: encode the remaining bytes with the embedded
// tokenizer, ordinary and with every special allowed, and check that decoding gives the bytes back
// (tiktoken's round-trip property holds for any byte string, valid UTF-8 or not). Mode byte odd:
// the remaining bytes are a tiktoken.model file loaded next to the embedded tokenizer config.
#include <cstdint>
#include <exception>
#include <filesystem>
#include <string_view>

#include "data/tokenizer.h"
#include "fuzz/fuzz_input.h"

namespace {

const k2f::data::Tokenizer& embedded_tokenizer() {
  static const auto tokenizer = k2f::data::Tokenizer::load(k2f::fuzz::source_dir() + "/assets/tokenizer");
  return tokenizer;
}

void check_round_trip(std::string_view text) {
  const auto& tokenizer = embedded_tokenizer();
  if (tokenizer.decode(tokenizer.encode(text)) != text) __builtin_trap();
  if (tokenizer.decode(tokenizer.encode(text, tokenizer.all_special_ids())) != text) __builtin_trap();
}

void load_tiktoken_file(const uint8_t* data, size_t size) {
  namespace fs = std::filesystem;
  static const std::string dir = [] {
    const auto path = k2f::fuzz::scratch_dir() / "tokenizer";
    fs::create_directories(path);
    // A config whose special ids sit far above any rank a small fuzz input can hold.
    k2f::fuzz::write_scratch_file("tokenizer/tokenizer_config.json",
                                  R"({"added_tokens_decoder": {"1000000": {"content": "[EOS]", "special": true}}})");
    return path.string();
  }();
  k2f::fuzz::write_scratch_file("tokenizer/tiktoken.model", data, size);
  try {
    const auto tokenizer = k2f::data::Tokenizer::load(dir);
    const std::string_view sample = "def f(x):\n    return x + 1  # \xc3\xa9\xe4\xb8\xad";
    (void)tokenizer.decode(tokenizer.encode(sample));
  } catch (const std::exception&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  if (data[0] % 2 == 0) {
    check_round_trip(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
  } else {
    load_tiktoken_file(data + 1, size - 1);
  }
  return 0;
}
