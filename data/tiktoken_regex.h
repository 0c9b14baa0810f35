// Pre-tokenisation patterns are written in tiktoken's syntax (Rust's regex crate through
// fancy-regex), which is what a released tokenizer ships; k2forge matches with PCRE2. The two
// differ in places that silently change meaning (class intersection `&&`, nested classes, bare
// script names, `\s`, `$`, `\v`, `{,n}`), so every pattern goes through this translator: each
// construct becomes a PCRE2 spelling of the same meaning, or the pattern is refused with an error
// naming the construct and its offset. It is never read with another meaning.
#pragma once

#include <string>
#include <string_view>

namespace k2f::data {

// The PCRE2 pattern (for PCRE2_UTF | PCRE2_UCP, newline LF) that matches what `tiktoken_pattern`
// matches under tiktoken. Throws k2f::Error naming the construct it cannot translate.
std::string tiktoken_to_pcre2(std::string_view tiktoken_pattern);

// The pattern a released `tokenization_kimi.py` defines: the string literals of its
// `pat_str = "|".join([...])` joined with "|" (or a single `pat_str = r"..."` literal). Throws
// naming `path` when the file has no such assignment.
std::string read_tokenization_py_pattern(const std::string& path);

}  // namespace k2f::data
