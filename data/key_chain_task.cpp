#include "data/key_chain_task.h"

#include <random>
#include <set>

#include "base/error.h"
#include "base/json_io.h"

namespace k2f::data {
namespace {

using OJson = nlohmann::ordered_json;

uint64_t mix(uint64_t x) {  // splitmix64's finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A key names (code, lookups left) without showing either: id = code * 300 + left - 1, put through a
// keyed pseudorandom permutation of [0, kIds), written as six digits and a check digit. The
// permutation is a 4-round Feistel network on 20 bits (two 10-bit halves, splitmix rounds) walked
// in cycles until it lands below kIds, so no digit or pair of digits carries the code or the
// lookups left. (An affine map id * a + b did: its last two digits were a linear function of left.)
constexpr int64_t kCodes = 1000;
constexpr int64_t kIds = kCodes * kMaxChainLength;  // 300000 < 2^20
constexpr int kHalfBits = 10;
constexpr uint64_t kHalfMask = (1u << kHalfBits) - 1;
constexpr int kRounds = 4;

uint64_t round_function(int round, uint64_t half) {
  return mix(half * 0x100 + static_cast<uint64_t>(round) + 0x4B32) & kHalfMask;
}

uint64_t feistel(uint64_t x, bool inverse) {
  uint64_t left = x >> kHalfBits, right = x & kHalfMask;
  for (int i = 0; i < kRounds; ++i) {
    if (!inverse) {
      const uint64_t next = left ^ round_function(i, right);
      left = right;
      right = next;
    } else {
      const uint64_t previous = right ^ round_function(kRounds - 1 - i, left);
      right = left;
      left = previous;
    }
  }
  return (left << kHalfBits) | right;
}

// Cycle walking: a permutation of [0, 2^20) restricted to [0, kIds) by applying it again while
// the value falls outside; the inverse walks the same cycle backwards.
int64_t permute_id(int64_t id, bool inverse) {
  auto x = static_cast<uint64_t>(id);
  do x = feistel(x, inverse);
  while (x >= static_cast<uint64_t>(kIds));
  return static_cast<int64_t>(x);
}

int64_t check_digit(const std::string& six) {
  int64_t sum = 0;
  for (size_t i = 0; i < six.size(); ++i) sum += (six[i] - '0') * (i % 2 == 0 ? 3 : 7);
  return sum % 10;
}

std::string make_key(int64_t code, int64_t left) {
  const int64_t id = code * kMaxChainLength + left - 1;
  std::string six = std::to_string(permute_id(id, false));
  six = std::string(6 - six.size(), '0') + six;
  return six + std::to_string(check_digit(six));
}

struct ParsedKey {
  int64_t code = 0;
  int64_t left = 0;  // lookups left, this one included
};

std::optional<ParsedKey> parse_key(const std::string& key) {
  if (key.size() != 7) return std::nullopt;
  for (const char c : key)
    if (c < '0' || c > '9') return std::nullopt;
  const std::string six = key.substr(0, 6);
  if (check_digit(six) != key[6] - '0') return std::nullopt;
  const int64_t scrambled = std::stoll(six);
  if (scrambled >= kIds) return std::nullopt;
  const int64_t id = permute_id(scrambled, true);
  return ParsedKey{id / kMaxChainLength, id % kMaxChainLength + 1};
}

std::string four_digits(int64_t n) {
  std::string s = std::to_string(n);
  return std::string(4 - s.size(), '0') + s;
}

}  // namespace

std::optional<std::string> look_up_key(const std::string& key) {
  const auto k = parse_key(key);
  if (!k) return std::nullopt;
  const uint64_t h = mix(static_cast<uint64_t>(k->code) * 1009ull + static_cast<uint64_t>(k->left));
  if (k->left == 1) return "done " + four_digits(static_cast<int64_t>(h % 10000));
  return make_key(static_cast<int64_t>(h % kCodes), k->left - 1);
}

std::optional<int64_t> lookups_left(const std::string& key) {
  const auto k = parse_key(key);
  if (!k) return std::nullopt;
  return k->left;
}

std::string KeyChainProblem::question() const {
  return "Look up the key " + start + ", then the key it returns, and so on until the lookup says done. "
         "Answer with the value it gives.";
}

std::vector<std::string> KeyChainProblem::results() const {
  std::vector<std::string> out;
  std::string key = start;
  for (int64_t i = 0; i < length; ++i) {
    key = *look_up_key(key);
    out.push_back(key);
  }
  return out;
}

bool is_heldout_key(const std::string& start) {
  const auto k = parse_key(start);
  check(k.has_value(), "is_heldout_key: \"", start, "\" is not a key");
  return mix(static_cast<uint64_t>(k->code) * 1009ull + static_cast<uint64_t>(k->left) + 0x5EED) % 8 == 0;
}

std::vector<KeyChainProblem> make_key_chain_problems(uint64_t seed, int64_t count, int64_t min_length,
                                                     int64_t max_length, TaskSplit split) {
  check(count >= 0, "problem count (", count, ") must be >= 0");
  check(min_length >= 1 && min_length <= max_length && max_length <= kMaxChainLength, "chain lengths [", min_length,
        ", ", max_length, "] must lie within [1, ", kMaxChainLength, "] with min <= max");
  std::mt19937_64 rng(seed ^ 0xC2B2AE3D27D4EB4Full);
  std::set<std::string> seen;
  std::vector<KeyChainProblem> problems;
  const auto span = static_cast<uint64_t>(max_length - min_length + 1);
  // 1000 start codes per length, about 1/8 of them held out: refuse what cannot be met rather than loop.
  const int64_t most = static_cast<int64_t>(span) * (split == TaskSplit::train ? 800 : 100);
  check(count <= most, count, " problems of lengths [", min_length, ", ", max_length, "] are more than the ",
        split == TaskSplit::train ? "train" : "held-out", " split holds distinct (", most, ")");
  while (static_cast<int64_t>(problems.size()) < count) {
    const int64_t length = min_length + static_cast<int64_t>(rng() % span);
    const std::string start = make_key(static_cast<int64_t>(rng() % kCodes), length);
    if (is_heldout_key(start) != (split == TaskSplit::heldout) || !seen.insert(start).second) continue;
    KeyChainProblem p{start, length, ""};
    p.answer = p.results().back().substr(5);
    problems.push_back(std::move(p));
  }
  return problems;
}

OJson lookup_tools_json() {
  return OJson::array({{{"type", "function"},
                        {"function",
                         {{"name", "lookup"},
                          {"description", "The entry of a key: the next key, or done and the value."},
                          {"parameters",
                           {{"type", "object"},
                            {"properties", {{"key", {{"type", "string"}}}}},
                            {"required", {"key"}}}}}}}});
}

OJson make_key_chain_conversation(const KeyChainProblem& problem) {
  OJson messages = OJson::array();
  messages.push_back({{"role", "user"}, {"content", problem.question()}});
  std::string key = problem.start;
  const auto results = problem.results();
  for (size_t i = 0; i < results.size(); ++i) {
    const std::string id = "functions.lookup:" + std::to_string(i);
    messages.push_back({{"role", "assistant"},
                        {"reasoning_content", ""},
                        {"content", ""},
                        {"tool_calls", OJson::array({{{"id", id},
                                                      {"type", "function"},
                                                      {"function", {{"name", "lookup"},
                                                                    {"arguments", OJson{{"key", key}}.dump()}}}}})}});
    messages.push_back({{"role", "tool"}, {"tool_call_id", id}, {"name", "lookup"}, {"content", results[i]}});
    key = results[i];
  }
  messages.push_back({{"role", "assistant"}, {"reasoning_content", ""}, {"content", "Answer: " + problem.answer}});
  return {{"tools", lookup_tools_json()}, {"messages", messages}};
}

void KeyChainSynthOptions::validate() const {
  check(!out.empty(), "--out: missing output path");
  check(count > 0, "--count (", count, ") must be positive");
  check(min_length >= 1 && min_length <= kMaxChainLength, "--min-length (", min_length, ") must be in [1, ",
        kMaxChainLength, "]");
  check(max_length >= min_length && max_length <= kMaxChainLength, "--max-length (", max_length, ") must be in [",
        "--min-length ", min_length, ", ", kMaxChainLength, "]");
}

int64_t write_key_chain_jsonl(const KeyChainSynthOptions& options) {
  options.validate();
  std::string text;
  int64_t lookups = 0;
  for (const auto& problem :
       make_key_chain_problems(options.seed, options.count, options.min_length, options.max_length, TaskSplit::train)) {
    lookups += problem.length;
    text += make_key_chain_conversation(problem).dump() + "\n";
  }
  write_text_file_atomic(options.out, text);
  return lookups;
}

}  // namespace k2f::data
