#include "data/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "base/error.h"
#include "data/tiktoken_regex.h"

namespace k2f::data {
namespace {

// PCRE2's text for an error code. A code it has no text for leaves the buffer untouched (found by
// fuzz/fuzz_tiktoken_pattern.cpp: reading it then ran past its end), so that case says the code.
std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  const int length = pcre2_get_error_message(code, buffer, sizeof(buffer));
  if (length < 0 && length != PCRE2_ERROR_NOMEMORY) return "PCRE2 error code " + std::to_string(code);
  return std::string(reinterpret_cast<const char*>(buffer));
}

}  // namespace

const std::string& kimi_pattern() {
  // As the released tokenization_kimi.py joins its pat_str pieces with "|" (K2_REFERENCE section 6).
  static const std::string pattern =
      R"([\p{Han}]+)"
      R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
      R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
      R"(|\p{N}{1,3})"
      R"(| ?[^\s\p{L}\p{N}]+[\r\n]*)"
      R"(|\s*[\r\n]+)"
      R"(|\s+(?!\S))"
      R"(|\s+)";
  return pattern;
}

struct Pretokenizer::Compiled {
  pcre2_code* code = nullptr;
  bool jit = false;  // JIT-compiled; else every match runs in PCRE2's interpreter (same results)
  ~Compiled() {
    if (code) pcre2_code_free(code);
  }
};

Pretokenizer::Pretokenizer(const std::string& pattern)
    : pattern_(pattern), pcre2_pattern_(tiktoken_to_pcre2(pattern)), compiled_(std::make_unique<Compiled>()) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  // Rust's `.` excludes only \n: say so whatever newline convention this PCRE2 was built with.
  pcre2_compile_context* context = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(context, PCRE2_NEWLINE_LF);
  compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pcre2_pattern_.data()), pcre2_pattern_.size(),
                                  PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset, context);
  pcre2_compile_context_free(context);
  check(compiled_->code != nullptr, "pre-tokenisation pattern: ", pcre2_message(error), " at offset ", offset,
        " of its PCRE2 translation ", pcre2_pattern_);
  // A pattern the JIT cannot take (it can run out of executable memory) still matches, slower.
  compiled_->jit = pcre2_jit_compile(compiled_->code, PCRE2_JIT_COMPLETE) == 0;
}

Pretokenizer::~Pretokenizer() = default;

namespace {

// Per-thread matching state: the JIT stack grows on demand up to 512 MiB of address space (each
// letter of a word adds a backtracking frame in the lookahead groups; a 1 MB word fits); beyond
// that the interpreter takes over with a large heap limit.
struct ThreadMatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(64 * 1024, 512 * 1024 * 1024, nullptr);
  ThreadMatchState() {
    pcre2_jit_stack_assign(context, nullptr, stack);
    pcre2_set_heap_limit(context, 4u << 20);  // KiB: 4 GiB for the interpreter fallback
  }
  ~ThreadMatchState() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

}  // namespace

void Pretokenizer::split(std::string_view text, const std::function<void(std::string_view)>& on_piece) const {
  thread_local ThreadMatchState state;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t position = 0;
  while (position < text.size()) {
    int rc = compiled_->jit ? pcre2_jit_match(compiled_->code, subject, text.size(), position, 0, state.data, state.context)
                            : PCRE2_ERROR_JIT_STACKLIMIT;
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
      rc = pcre2_match(compiled_->code, subject, text.size(), position, PCRE2_NO_JIT, state.data, state.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    check(rc > 0, "pre-tokenisation failed at byte ", position, ": ", pcre2_message(rc));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state.data);
    check(ovector[1] > ovector[0], "pre-tokenisation pattern matched the empty string at byte ", ovector[0],
          " (a pattern must consume at least one character)");
    if (ovector[0] > position) on_piece(text.substr(position, ovector[0] - position));
    on_piece(text.substr(ovector[0], ovector[1] - ovector[0]));
    position = ovector[1];
  }
  if (position < text.size()) on_piece(text.substr(position));
}

}  // namespace k2f::data
