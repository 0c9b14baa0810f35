// The regex split that runs before byte-pair merging (tiktoken's "pattern"). The pattern is
// written in tiktoken's syntax, translated to PCRE2 (data/tiktoken_regex.h) and compiled once with
// PCRE2 (UTF + UCP + JIT). Input need not be valid UTF-8: it is matched with
// PCRE2_MATCH_INVALID_UTF, where an invalid byte never matches, and every run of bytes between
// two matches (only invalid bytes: the pattern covers every valid character) becomes its own
// piece, so every byte lands in exactly one piece and decode(encode(x)) == x for any bytes.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace k2f::data {

// Kimi-K2's pre-tokenisation regex (K2_REFERENCE section 6) as the released tokenizer writes it,
// in tiktoken's syntax.
const std::string& kimi_pattern();

class Pretokenizer {
 public:
  // `pattern` in tiktoken's syntax; throws naming a construct that has no PCRE2 equivalent.
  explicit Pretokenizer(const std::string& pattern);
  ~Pretokenizer();
  Pretokenizer(const Pretokenizer&) = delete;
  Pretokenizer& operator=(const Pretokenizer&) = delete;

  // Calls `on_piece` for each piece of `text`, in order; the pieces concatenate to `text`.
  void split(std::string_view text, const std::function<void(std::string_view)>& on_piece) const;

  const std::string& pattern() const { return pattern_; }              // tiktoken syntax, as given
  const std::string& pcre2_pattern() const { return pcre2_pattern_; }  // what PCRE2 compiles

 private:
  struct Compiled;
  std::string pattern_;
  std::string pcre2_pattern_;
  std::unique_ptr<Compiled> compiled_;
};

}  // namespace k2f::data
