// An obviously correct, slow tiktoken encoder written independently of data/ (the reference
// the fast tokenizer is compared with): the regex split uses plain pcre2_match (no JIT) with
// its own loop, and each piece is merged by rescanning every adjacent pair for the lowest rank
// (leftmost on ties) in a std::map. Special tokens: leftmost occurrence, longest at a position.
#pragma once

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace k2f::testing {

// Kimi's regex in PCRE2 written out by hand: tiktoken's \s is Unicode White_Space (spelled as WS),
// its bare \p{Han} is the Han script (PCRE2's bare \p{Han} is Script_Extensions: \p{sc:Han}), and
// its class intersection [X&&[^Han]] is "X unless Han".
inline std::string naive_kimi_pattern() {
  std::string p =
      R"([\p{sc:Han}]+|[^\r\n\p{L}\p{N}]?(?:(?![\p{sc:Han}])[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}])*(?:(?![\p{sc:Han}])[\p{Ll}\p{Lm}\p{Lo}\p{M}])+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?(?:(?![\p{sc:Han}])[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}])+(?:(?![\p{sc:Han}])[\p{Ll}\p{Lm}\p{Lo}\p{M}])*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^WS\p{L}\p{N}]+[\r\n]*|[WS]*[\r\n]+|[WS]+(?![^WS])|[WS]+)";
  const std::string ws = R"(\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";
  for (size_t at = p.find("WS"); at != std::string::npos; at = p.find("WS", at + ws.size())) p.replace(at, 2, ws);
  return p;
}

class NaiveBpe {
 public:
  NaiveBpe(const std::vector<std::string>& tokens, std::map<std::string, int> specials, const std::string& pattern)
      : specials_(std::move(specials)) {
    for (size_t r = 0; r < tokens.size(); ++r) ranks_[tokens[r]] = static_cast<int>(r);
    int error = 0;
    PCRE2_SIZE offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr);
    if (!code_) throw std::runtime_error("naive pattern does not compile");
  }
  ~NaiveBpe() { pcre2_code_free(code_); }

  std::vector<std::string> split(const std::string& text) const {
    std::vector<std::string> pieces;
    pcre2_match_data* match = pcre2_match_data_create(1, nullptr);
    size_t at = 0;
    while (at < text.size()) {
      const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), at, 0, match, nullptr);
      if (rc < 0) break;
      const PCRE2_SIZE* v = pcre2_get_ovector_pointer(match);
      if (v[0] > at) pieces.push_back(text.substr(at, v[0] - at));  // bytes no alternative matches
      pieces.push_back(text.substr(v[0], v[1] - v[0]));
      at = v[1];
    }
    if (at < text.size()) pieces.push_back(text.substr(at));
    pcre2_match_data_free(match);
    return pieces;
  }

  std::vector<int> encode_piece(const std::string& piece) const {
    std::vector<std::string> parts;
    for (char c : piece) parts.emplace_back(1, c);
    while (parts.size() > 1) {
      int best_rank = -1;
      size_t best = 0;
      for (size_t i = 0; i + 1 < parts.size(); ++i) {
        const auto it = ranks_.find(parts[i] + parts[i + 1]);
        if (it != ranks_.end() && (best_rank < 0 || it->second < best_rank)) best_rank = it->second, best = i;
      }
      if (best_rank < 0) break;
      parts[best] += parts[best + 1];
      parts.erase(parts.begin() + static_cast<long>(best) + 1);
    }
    std::vector<int> ids;
    for (const auto& p : parts) ids.push_back(ranks_.at(p));
    return ids;
  }

  std::vector<int> encode_ordinary(const std::string& text) const {
    std::vector<int> ids;
    for (const auto& piece : split(text))
      for (int id : encode_piece(piece)) ids.push_back(id);
    return ids;
  }

  // With every special token allowed.
  std::vector<int> encode_with_specials(const std::string& text) const {
    std::vector<int> ids;
    size_t start = 0;
    while (true) {
      size_t best_at = std::string::npos, best_length = 0;
      int best_id = -1;
      for (const auto& [content, id] : specials_) {
        const size_t at = text.find(content, start);
        if (at == std::string::npos) continue;
        if (at < best_at || (at == best_at && content.size() > best_length))
          best_at = at, best_length = content.size(), best_id = id;
      }
      const auto ordinary = encode_ordinary(text.substr(start, best_at == std::string::npos ? std::string::npos
                                                                                             : best_at - start));
      ids.insert(ids.end(), ordinary.begin(), ordinary.end());
      if (best_at == std::string::npos) return ids;
      ids.push_back(best_id);
      start = best_at + best_length;
    }
  }

 private:
  std::map<std::string, int> ranks_;
  std::map<std::string, int> specials_;
  pcre2_code* code_ = nullptr;
};

}  // namespace k2f::testing
