#include "data/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "base/error.h"

namespace k2f::data {
namespace {

std::string build_kimi_pattern() {
  const std::string ws = R"(\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";
  const std::string s = "[" + ws + "]", not_s = "[^" + ws + "]";
  const std::string upper = R"((?:(?!\p{Han})[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]))";
  const std::string lower = R"((?:(?!\p{Han})[\p{Ll}\p{Lm}\p{Lo}\p{M}]))";
  const std::string contraction = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)?)";
  const std::string lead = R"([^\r\n\p{L}\p{N}]?)";
  return R"([\p{Han}]+|)" + lead + upper + "*" + lower + "+" + contraction + "|" + lead + upper + "+" + lower + "*" +
         contraction + R"(|\p{N}{1,3}| ?[^)" + ws + R"(\p{L}\p{N}]+[\r\n]*|)" + s + R"(*[\r\n]+|)" + s + "+(?!" +
         not_s + ")|" + s + "+";
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

const std::string& kimi_pattern() {
  static const std::string pattern = build_kimi_pattern();
  return pattern;
}

struct Pretokenizer::Compiled {
  pcre2_code* code = nullptr;
  ~Compiled() {
    if (code) pcre2_code_free(code);
  }
};

Pretokenizer::Pretokenizer(const std::string& pattern) : pattern_(pattern), compiled_(std::make_unique<Compiled>()) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                  PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr);
  check(compiled_->code != nullptr, "pre-tokenisation pattern: ", pcre2_message(error), " at offset ", offset);
  const int jit = pcre2_jit_compile(compiled_->code, PCRE2_JIT_COMPLETE);
  check(jit == 0, "pre-tokenisation pattern: JIT compilation failed: ", pcre2_message(jit));
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
    int rc = pcre2_jit_match(compiled_->code, subject, text.size(), position, 0, state.data, state.context);
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
