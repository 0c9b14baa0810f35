#include "data/tokenizer.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "base/error.h"
#include "base/json_io.h"
#include "data/base64.h"
#include "data/sha256.h"
#include "data/tiktoken_regex.h"

namespace k2f::data {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> read_tiktoken_model(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), path, ": cannot open for reading (a tokenizer directory needs tiktoken.model)");
  struct RankLine {
    std::string bytes;
    int64_t rank = 0;
    int64_t number = 0;
  };
  std::vector<RankLine> lines;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    check(space != std::string::npos && line.find(' ', space + 1) == std::string::npos, path, ":", number,
          ": expected \"<base64 bytes> <rank>\", got \"", line.substr(0, 80), "\"");
    const auto bytes = base64_decode(std::string_view(line).substr(0, space));
    check(bytes.has_value(), path, ":", number, ": invalid base64 \"", line.substr(0, std::min<size_t>(space, 80)),
          "\"");
    const std::string rank_text = line.substr(space + 1);
    char* end = nullptr;
    const long long rank = std::strtoll(rank_text.c_str(), &end, 10);
    check(!rank_text.empty() && *end == '\0' && rank >= 0 && rank < (1LL << 31) && std::isdigit(rank_text[0]), path,
          ":", number, ": expected a non-negative integer rank, got \"", rank_text, "\"");
    lines.push_back({*bytes, rank, number});
  }
  // Ranks are 0..n-1 for n lines, so a rank of n or more is a gap; checking it before sizing the
  // table keeps a stray huge rank from allocating gigabytes.
  std::vector<std::string> tokens(lines.size());
  std::vector<int64_t> line_of_rank(lines.size(), 0);
  for (auto& entry : lines) {
    check(entry.rank < static_cast<int64_t>(lines.size()), path, ":", entry.number, ": rank ", entry.rank,
          " is out of range: the file has ", lines.size(), " ranks, so they must be 0..", lines.size() - 1);
    check(line_of_rank[entry.rank] == 0, path, ":", entry.number, ": duplicate rank ", entry.rank,
          " (already given on line ", line_of_rank[entry.rank], ")");
    tokens[entry.rank] = std::move(entry.bytes);
    line_of_rank[entry.rank] = entry.number;
  }
  check(!tokens.empty(), path, ": no ranks (expected one \"<base64 bytes> <rank>\" line per token)");
  // n lines, ranks below n and none twice: every rank 0..n-1 is present.
  std::map<std::string, size_t> seen;
  for (size_t r = 0; r < tokens.size(); ++r) {
    const auto [it, inserted] = seen.emplace(tokens[r], r);
    check(inserted, path, ":", line_of_rank[r], ": rank ", r, " has the same bytes as rank ", it->second,
          " (line ", line_of_rank[it->second], ")");
  }
  return tokens;
}

std::string token_content(const Json& value, const std::string& where) {
  if (value.is_string()) return value.get<std::string>();
  check(value.is_object() && value.contains("content") && value["content"].is_string(), where,
        ": expected a string or an object with a string \"content\", got ", value.dump());
  return value["content"].get<std::string>();
}

struct ConfigTokens {
  std::vector<SpecialToken> specials;
  std::string eos_content = "[EOS]";
};

ConfigTokens read_tokenizer_config(const std::string& path) {
  check(fs::exists(path), path, ": missing (a tokenizer directory needs tokenizer_config.json)");
  const Json config = read_json_file(path);
  check(config.is_object(), path, ": expected a JSON object, got ", config.type_name());
  ConfigTokens result;
  if (config.contains("added_tokens_decoder")) {
    const Json& added = config["added_tokens_decoder"];
    check(added.is_object(), path, ": added_tokens_decoder: expected an object {\"id\": {\"content\": ...}}");
    for (const auto& [key, value] : added.items()) {
      const std::string where = path + ": added_tokens_decoder[\"" + key + "\"]";
      char* end = nullptr;
      const long long id = std::strtoll(key.c_str(), &end, 10);
      check(!key.empty() && *end == '\0' && id >= 0 && id < (1LL << 31), where, ": the key must be a token id");
      result.specials.push_back({static_cast<int32_t>(id), token_content(value, where)});
    }
  }
  if (config.contains("eos_token") && !config["eos_token"].is_null())
    result.eos_content = token_content(config["eos_token"], path + ": eos_token");
  std::sort(result.specials.begin(), result.specials.end(),
            [](const SpecialToken& a, const SpecialToken& b) { return a.id < b.id; });
  return result;
}

}  // namespace

Tokenizer::Tokenizer(std::vector<std::string> tokens, std::vector<SpecialToken> specials, std::string pattern,
                     std::string eos_content)
    : tokens_(std::move(tokens)),
      ranks_(tokens_),
      specials_(std::move(specials)),
      pretokenizer_(std::make_shared<Pretokenizer>(pattern)),
      eos_content_(std::move(eos_content)) {
  vocab_size_ = num_ranks();
  std::sort(specials_.begin(), specials_.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  for (size_t i = 0; i < specials_.size(); ++i) {
    const auto& s = specials_[i];
    check(s.id >= num_ranks(), "special token \"", s.content, "\" has id ", s.id, ", inside the ranks [0, ",
          num_ranks(), ")");
    check(s.id - num_ranks() < kMaxSpecialIdSpan, "special token \"", s.content, "\" has id ", s.id, ", more than ",
          kMaxSpecialIdSpan, " ids above the last rank ", num_ranks() - 1, " (special ids follow the ranks)");
    check(i == 0 || specials_[i - 1].id != s.id, "special token id ", s.id, " is given twice");
    check(!s.content.empty(), "special token ", s.id, " has empty content");
    vocab_size_ = std::max(vocab_size_, s.id + 1);
  }
  id_bytes_.assign(vocab_size_ - num_ranks(), std::string());
  for (const auto& s : specials_) id_bytes_[s.id - num_ranks()] = s.content;
  eos_id_ = special_id(eos_content_);
  hash_ = "sha256:" + sha256_hex(canonical_form());
}

Tokenizer Tokenizer::load(const std::string& dir) {
  check(fs::is_directory(dir), dir, ": not a tokenizer directory (expected tiktoken.model and tokenizer_config.json)");
  auto tokens = read_tiktoken_model(dir + "/tiktoken.model");
  auto config = read_tokenizer_config(dir + "/tokenizer_config.json");
  std::string pattern = kimi_pattern();
  const std::string pattern_path = dir + "/pattern.txt", released_path = dir + "/tokenization_kimi.py";
  if (fs::exists(pattern_path)) {
    pattern = read_text_file(pattern_path);
    while (!pattern.empty() && (pattern.back() == '\n' || pattern.back() == '\r')) pattern.pop_back();
    check(!pattern.empty(), pattern_path, ": empty pattern");
  } else if (fs::exists(released_path)) {
    pattern = read_tokenization_py_pattern(released_path);
  }
  try {
    return Tokenizer(std::move(tokens), std::move(config.specials), pattern, config.eos_content);
  } catch (const Error& e) {
    fail(dir, ": ", e.what());
  }
}

std::string Tokenizer::tiktoken_model_text() const {
  std::string text;
  for (int32_t r = 0; r < num_ranks(); ++r) text += base64_encode(tokens_[r]) + " " + std::to_string(r) + "\n";
  return text;
}

std::string Tokenizer::config_json_text() const {
  Json added = Json::object();
  for (const auto& s : specials_)
    added[std::to_string(s.id)] = {{"content", s.content}, {"lstrip", false}, {"normalized", false},
                                   {"rstrip", false}, {"single_word", false}, {"special", true}};
  Json config = {{"added_tokens_decoder", added}, {"tokenizer_class", "TikTokenTokenizer"},
                 {"model_max_length", 1048576}, {"eos_token", eos_content_}};
  if (special_id("[BOS]") >= 0) config["bos_token"] = "[BOS]";
  return config.dump(2) + "\n";
}

std::string Tokenizer::canonical_form() const {
  std::ostringstream out;
  out << "k2forge-tokenizer-v1\n" << tiktoken_model_text();
  for (const auto& s : specials_) out << "special " << s.id << " " << base64_encode(s.content) << "\n";
  out << "eos " << eos_content_ << "\npattern " << base64_encode(pattern()) << "\n";
  return out.str();
}

void Tokenizer::save(const std::string& dir) const {
  check(!fs::exists(dir), dir, ": already exists (choose a new --out directory)");
  const fs::path temporary = dir + ".tmp." + std::to_string(::getpid());
  fs::remove_all(temporary);
  try {
    fs::create_directories(temporary);
    write_text_file_atomic((temporary / "tiktoken.model").string(), tiktoken_model_text());
    write_text_file_atomic((temporary / "tokenizer_config.json").string(), config_json_text());
    write_text_file_atomic((temporary / "pattern.txt").string(), pattern() + "\n");
    fs::rename(temporary, dir);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(temporary, ignored);
    throw;
  }
}

int32_t Tokenizer::special_id(const std::string& content) const {
  for (const auto& s : specials_)
    if (s.content == content) return s.id;
  return -1;
}

std::unordered_set<int32_t> Tokenizer::all_special_ids() const {
  std::unordered_set<int32_t> ids;
  for (const auto& s : specials_) ids.insert(s.id);
  return ids;
}

void Tokenizer::encode_ordinary_append(std::string_view text, std::vector<int32_t>& out) const {
  pretokenizer_->split(text, [&](std::string_view piece) { ranks_.encode_piece(piece, out); });
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 1);
  encode_ordinary_append(text, out);
  return out;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, const std::unordered_set<int32_t>& allowed_special) const {
  std::vector<const SpecialToken*> allowed;
  for (const auto& s : specials_)
    if (allowed_special.count(s.id)) allowed.push_back(&s);
  std::stable_sort(allowed.begin(), allowed.end(),
                   [](const auto* a, const auto* b) { return a->content.size() > b->content.size(); });
  bool first_byte[256] = {};
  for (const auto* s : allowed) first_byte[static_cast<unsigned char>(s->content[0])] = true;
  std::vector<int32_t> out;
  size_t start = 0;
  for (size_t pos = 0; pos < text.size(); ++pos) {
    if (!first_byte[static_cast<unsigned char>(text[pos])]) continue;
    for (const auto* s : allowed) {
      if (text.compare(pos, s->content.size(), s->content) != 0) continue;
      encode_ordinary_append(text.substr(start, pos - start), out);
      out.push_back(s->id);
      start = pos + s->content.size();
      pos = start - 1;
      break;
    }
  }
  encode_ordinary_append(text.substr(start), out);
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id >= 0 && id < num_ranks()) {
      out += ranks_.token(id);
      continue;
    }
    check(id >= num_ranks() && id < vocab_size_ && !id_bytes_[id - num_ranks()].empty(), "decode: token id ", id,
          " at position ", i, " is not in the vocabulary (ranks [0, ", num_ranks(), "), ", specials_.size(),
          " special tokens below ", vocab_size_, ")");
    out += id_bytes_[id - num_ranks()];
  }
  return out;
}

}  // namespace k2f::data
