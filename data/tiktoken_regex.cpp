// A recursive-descent reader of Rust regex syntax that writes PCRE2 syntax. Outside brackets
// most tokens mean the same in both and are copied; brackets are parsed into a small set
// expression (union, &&, --, ~~, negation) and written as one PCRE2 class where PCRE2 can say it,
// else as one-character lookahead forms: A&&B = (?:(?=B)A), A--B = (?:(?!B)A).
#include "data/tiktoken_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "base/error.h"
#include "base/json_io.h"

namespace k2f::data {
namespace {

// Unicode White_Space: what Rust's \s means (PCRE2's \s lacks U+0085).
constexpr const char* kWhiteSpaceItems =
    R"(\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// Rust's loose matching of property names: case, spaces, '_' and '-' are ignored.
std::string loose(std::string_view name) {
  std::string out;
  for (char c : name)
    if (c != ' ' && c != '_' && c != '-') out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// General categories by every name Rust accepts (abbreviation or long name), as PCRE2 spells them.
const std::map<std::string, std::string>& general_categories() {
  static const std::map<std::string, std::string> table = [] {
    const std::vector<std::pair<const char*, const char*>> names = {
        {"L", "Letter"}, {"Lu", "Uppercase_Letter"}, {"Ll", "Lowercase_Letter"}, {"Lt", "Titlecase_Letter"},
        {"Lm", "Modifier_Letter"}, {"Lo", "Other_Letter"}, {"L&", "Cased_Letter"}, {"M", "Mark"},
        {"Mn", "Nonspacing_Mark"}, {"Mc", "Spacing_Mark"}, {"Me", "Enclosing_Mark"}, {"N", "Number"},
        {"Nd", "Decimal_Number"}, {"Nl", "Letter_Number"}, {"No", "Other_Number"}, {"P", "Punctuation"},
        {"Pc", "Connector_Punctuation"}, {"Pd", "Dash_Punctuation"}, {"Ps", "Open_Punctuation"},
        {"Pe", "Close_Punctuation"}, {"Pi", "Initial_Punctuation"}, {"Pf", "Final_Punctuation"},
        {"Po", "Other_Punctuation"}, {"S", "Symbol"}, {"Sm", "Math_Symbol"}, {"Sc", "Currency_Symbol"},
        {"Sk", "Modifier_Symbol"}, {"So", "Other_Symbol"}, {"Z", "Separator"}, {"Zs", "Space_Separator"},
        {"Zl", "Line_Separator"}, {"Zp", "Paragraph_Separator"}, {"C", "Other"}, {"Cc", "Control"},
        {"Cf", "Format"}, {"Cs", "Surrogate"}, {"Co", "Private_Use"}, {"Cn", "Unassigned"}};
    std::map<std::string, std::string> t;
    for (const auto& [abbreviation, long_name] : names) {
      t[loose(abbreviation)] = abbreviation;
      t[loose(long_name)] = abbreviation;
    }
    t["lc"] = "L&";
    t["combiningmark"] = "M";
    t["digit"] = "Nd";
    t["punct"] = "P";
    t["cntrl"] = "Cc";
    return t;
  }();
  return table;
}

// Rust's regex parser refuses deeper nesting by default (regex-syntax's nest_limit); here it also
// bounds the recursion of the bracket reader.
constexpr int kMaxClassNesting = 250;
// A~~B writes both operands twice, so nested ~~ doubles the translation at every level; past this
// size (beyond what PCRE2 compiles with its default link size) the pattern is refused.
constexpr size_t kMaxTranslatedClassBytes = size_t{1} << 20;

bool pcre2_accepts(const std::string& pattern) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (code) pcre2_code_free(code);
  return code != nullptr;
}

// One character-set expression of a bracket class.
struct CharSet {
  enum class Kind { Items, Union, And, Minus, Xor };
  Kind kind = Kind::Items;
  bool negated = false;
  std::string items;                             // Kind::Items: PCRE2 class items
  std::vector<std::unique_ptr<CharSet>> parts;  // the other kinds: operands, left to right
};

// A union of plain item lists is one PCRE2 class: the items, concatenated (nullopt otherwise).
std::optional<std::string> union_items(const CharSet& set) {
  if (set.kind != CharSet::Kind::Union) return std::nullopt;
  std::string items;
  for (const auto& part : set.parts) {
    if (part->kind != CharSet::Kind::Items || part->negated) return std::nullopt;
    items += part->items;
  }
  return items;
}

// The set's members as one PCRE2 atom, ignoring a compound set's negation.
std::string write_members(const CharSet& set);

// One PCRE2 atom that matches exactly one character of `set`.
std::string write_set(const CharSet& set) {
  if (set.kind == CharSet::Kind::Items) return (set.negated ? "[^" : "[") + set.items + "]";
  if (!set.negated) return write_members(set);
  if (const auto items = union_items(set)) return "[^" + *items + "]";
  return "(?:(?!" + write_members(set) + ")(?s:.))";
}

std::string write_members(const CharSet& set) {
  using Kind = CharSet::Kind;
  switch (set.kind) {
    case Kind::Items:
      return write_set(set);
    case Kind::Union: {
      if (const auto items = union_items(set)) return "[" + *items + "]";
      std::string out = "(?:";
      for (size_t i = 0; i < set.parts.size(); ++i) out += (i ? "|" : "") + write_set(*set.parts[i]);
      return out + ")";
    }
    case Kind::And: {
      // [A&&[^B]] reads best as "A, unless B"; the general form is a lookahead for B.
      const CharSet& b = *set.parts[1];
      if (b.kind == Kind::Items && b.negated) return "(?:(?![" + b.items + "])" + write_set(*set.parts[0]) + ")";
      return "(?:(?=" + write_set(b) + ")" + write_set(*set.parts[0]) + ")";
    }
    case Kind::Minus:
      return "(?:(?!" + write_set(*set.parts[1]) + ")" + write_set(*set.parts[0]) + ")";
    case Kind::Xor: {
      const std::string a = write_set(*set.parts[0]), b = write_set(*set.parts[1]);
      check(2 * (a.size() + b.size()) <= kMaxTranslatedClassBytes,
            "pre-tokenisation pattern (tiktoken syntax): a character class nests '~~' so deeply that its PCRE2 "
            "form would exceed ", kMaxTranslatedClassBytes, " bytes (each '~~' writes both operands twice)");
      return "(?:(?!" + b + ")" + a + "|(?!" + a + ")" + b + ")";
    }
  }
  return {};
}

class Translator {
 public:
  explicit Translator(std::string_view pattern) : p_(pattern) {}

  std::string run() {
    std::string out;
    while (i_ < p_.size()) out += next_outside();
    check(depth_ == 0, where(p_.size()), "unbalanced '(': a group is not closed");
    return out;
  }

 private:
  std::string_view p_;
  size_t i_ = 0;
  int depth_ = 0;
  int class_depth_ = 0;  // brackets open at i_

  std::string where(size_t at) const {
    return "pre-tokenisation pattern (tiktoken syntax), offset " + std::to_string(at) + ": ";
  }
  [[noreturn]] void refuse(size_t at, const std::string& what) const {
    fail(where(at), what, " (k2forge translates tiktoken's regex syntax to PCRE2 and refuses what it cannot say "
                          "with the same meaning)");
  }
  bool at(std::string_view s) const { return p_.substr(i_, s.size()) == s; }

  // One UTF-8 code point, copied raw.
  std::string take_char() {
    size_t n = 1;
    const auto lead = static_cast<unsigned char>(p_[i_]);
    if (lead >= 0xF0) n = 4;
    else if (lead >= 0xE0) n = 3;
    else if (lead >= 0xC0) n = 2;
    n = std::min(n, p_.size() - i_);
    std::string c(p_.substr(i_, n));
    i_ += n;
    return c;
  }

  std::string next_outside() {
    const size_t start = i_;
    const char c = p_[i_];
    switch (c) {
      case '\\':
        return escape(/*in_class=*/false);
      case '[': {
        ++i_;
        return write_set(*bracket(start));
      }
      case '(':
        return group_open();
      case ')':
        check(depth_ > 0, where(start), "unbalanced ')'");
        --depth_;
        ++i_;
        return ")";
      case '{':
        return counted_repetition();
      case '$':
        ++i_;
        return "\\z";  // Rust's $ is the end of the text only; PCRE2's also matches before a final \n
      default:
        return take_char();
    }
  }

  std::string counted_repetition() {
    const size_t start = i_;
    size_t j = i_ + 1, digits_before = 0, digits_after = 0;
    bool comma = false;
    while (j < p_.size() && std::isdigit(static_cast<unsigned char>(p_[j]))) ++j, ++digits_before;
    if (j < p_.size() && p_[j] == ',') {
      comma = true;
      ++j;
      while (j < p_.size() && std::isdigit(static_cast<unsigned char>(p_[j]))) ++j, ++digits_after;
    }
    if (j >= p_.size() || p_[j] != '}' || digits_before == 0) {
      if (comma && digits_before == 0) refuse(start, "counted repetition {,n}: PCRE2 10.42 reads it as literal text");
      refuse(start, "'{' that is not a counted repetition {n}, {n,} or {n,m}");
    }
    i_ = j + 1;
    (void)digits_after;
    return std::string(p_.substr(start, i_ - start));
  }

  std::string group_open() {
    const size_t start = i_;
    ++depth_;
    ++i_;
    if (!at("?")) return "(";
    for (const char* kind : {"?:", "?=", "?!", "?<=", "?<!", "?>"})
      if (at(kind)) {
        i_ += std::string_view(kind).size();
        return "(" + std::string(kind);
      }
    if (at("?P<") || (at("?<") && i_ + 2 < p_.size() && std::isalpha(static_cast<unsigned char>(p_[i_ + 2])))) {
      const size_t close = p_.find('>', i_);
      check(close != std::string_view::npos, where(start), "unterminated group name");
      std::string name(p_.substr(i_, close + 1 - i_));
      i_ = close + 1;
      return "(" + name;
    }
    // Flags: (?i) (?-i) (?is:...). Only i and s mean the same in both engines here.
    ++i_;
    std::string flags;
    while (i_ < p_.size() && p_[i_] != ')' && p_[i_] != ':') {
      const char f = p_[i_];
      if (f != 'i' && f != 's' && f != '-') {
        const std::string name(1, f);
        if (f == 'x') refuse(i_, "flag (?x): Rust ignores whitespace inside classes in this mode, PCRE2 does not");
        if (f == 'm') refuse(i_, "flag (?m): multi-line anchors are not translated");
        refuse(i_, "flag (?" + name + ") is not translated (only i and s are)");
      }
      flags += f;
      ++i_;
    }
    check(i_ < p_.size(), where(start), "unterminated group");
    const char end = p_[i_++];
    if (end == ')') --depth_;  // a flag group (?i) opens nothing
    return "(?" + flags + end;
  }

  // A code point escape (\xHH \x{..} \uHHHH \u{..} \UHHHHHHHH \U{..}) as PCRE2's \x{..}.
  std::string hex_escape(size_t start) {
    const char kind = p_[i_++];
    std::string digits;
    if (at("{")) {
      const size_t close = p_.find('}', i_);
      check(close != std::string_view::npos, where(start), "unterminated \\", kind, "{...}");
      digits = std::string(p_.substr(i_ + 1, close - i_ - 1));
      i_ = close + 1;
    } else {
      const size_t width = kind == 'x' ? 2 : kind == 'u' ? 4 : 8;
      digits = std::string(p_.substr(i_, width));
      i_ += digits.size();
      check(digits.size() == width, where(start), "\\", kind, " needs ", width, " hex digits");
    }
    check(!digits.empty() && std::all_of(digits.begin(), digits.end(), [](char d) { return std::isxdigit(static_cast<unsigned char>(d)); }),
          where(start), "\\", kind, " escape with non-hex digits '", digits, "'");
    return "\\x{" + digits + "}";
  }

  // \p{..} \P{..} \pL: as a PCRE2 class item, or outside a class an atom.
  std::string property(size_t start, bool in_class) {
    bool negated = p_[i_++] == 'P';
    std::string name;
    check(i_ < p_.size(), where(start), "\\p without a property name");
    if (p_[i_] == '{') {
      const size_t close = p_.find('}', i_);
      check(close != std::string_view::npos, where(start), "unterminated \\p{...}");
      name = std::string(p_.substr(i_ + 1, close - i_ - 1));
      i_ = close + 1;
    } else {
      name = take_char();
    }
    if (!name.empty() && name[0] == '^') negated = !negated, name.erase(0, 1);
    std::string key, value = name;
    for (const char* op : {"!=", "=", ":"}) {
      const size_t pos = name.find(op);
      if (pos == std::string::npos) continue;
      if (std::string_view(op) == "!=") negated = !negated;
      key = loose(name.substr(0, pos));
      value = name.substr(pos + std::string_view(op).size());
      break;
    }
    const std::string prefix = negated ? "\\P{" : "\\p{";
    const auto& categories = general_categories();
    if (key.empty() || key == "gc" || key == "generalcategory") {
      if (auto found = categories.find(loose(value)); found != categories.end()) return prefix + found->second + "}";
      if (key.empty() && loose(value) == "any") return negated ? "\\P{Any}" : "\\p{Any}";
      if (key.empty() && loose(value) == "ascii") {
        if (negated) refuse(start, "\\P{ASCII} is not translated");
        return in_class ? "\\x{0}-\\x{7F}" : "[\\x{0}-\\x{7F}]";
      }
      if (key.empty() && loose(value) == "assigned") return negated ? "\\p{Cn}" : "\\P{Cn}";
    }
    // Rust reads a bare script name as Script (sc); PCRE2 10.40+ reads it as Script_Extensions.
    if (key.empty() || key == "sc" || key == "script") {
      if (pcre2_accepts("\\p{sc:" + value + "}")) return prefix + "sc:" + value + "}";
      if (!key.empty()) refuse(start, "unknown script '" + value + "' in \\p{" + name + "}");
    }
    if (key == "scx" || key == "scriptextensions") {
      if (pcre2_accepts("\\p{scx:" + value + "}")) return prefix + "scx:" + value + "}";
      refuse(start, "unknown script '" + value + "' in \\p{" + name + "}");
    }
    if (key.empty() && pcre2_accepts("\\p{" + value + "}")) return prefix + value + "}";  // a binary property
    refuse(start, "Unicode property \\p{" + name + "} is not one k2forge translates (general categories, "
                  "scripts and binary properties such as White_Space)");
  }

  // An escape. In a class the result is a class item; outside, a complete atom.
  std::string escape(bool in_class) {
    const size_t start = i_;
    ++i_;
    check(i_ < p_.size(), where(start), "pattern ends with a lone backslash");
    const char c = p_[i_];
    switch (c) {
      case 'p':
      case 'P':
        return property(start, in_class);
      case 'x':
      case 'u':
      case 'U':
        return hex_escape(start);
      case 's':
        ++i_;
        return in_class ? kWhiteSpaceItems : std::string("[") + kWhiteSpaceItems + "]";
      case 'S':
        ++i_;
        return in_class ? "\\P{White_Space}" : std::string("[^") + kWhiteSpaceItems + "]";
      case 'd':
        ++i_;
        return "\\p{Nd}";
      case 'D':
        ++i_;
        return "\\P{Nd}";
      case 'v':
        ++i_;
        return "\\x{0B}";  // Rust: vertical tab; PCRE2: any vertical whitespace
      case 't':
      case 'n':
      case 'r':
      case 'f':
      case 'a':
        ++i_;
        return std::string("\\") + c;
      case 'A':
      case 'z':
        check(!in_class, where(start), "\\", c, " inside a class");
        ++i_;
        return std::string("\\") + c;
      case 'w':
      case 'W':
      case 'b':
      case 'B':
        refuse(start, std::string("\\") + c +
                          ": Rust's Unicode word characters (Alphabetic, M, Nd, Pc, Join_Control) differ from PCRE2's");
      default:
        break;
    }
    if (!in_class && c >= '1' && c <= '9') {  // fancy-regex back-reference, same in PCRE2
      ++i_;
      return std::string("\\") + c;
    }
    if (static_cast<unsigned char>(c) < 0x80 && std::ispunct(static_cast<unsigned char>(c))) {
      ++i_;
      return std::string("\\") + c;
    }
    refuse(start, std::string("escape \\") + c + " is not translated");
  }

  // After '[': the set up to and including its ']'.
  std::unique_ptr<CharSet> bracket(size_t open) {
    check(++class_depth_ <= kMaxClassNesting, where(open), "character classes nest deeper than ",
          kMaxClassNesting, " levels");
    bool negated = false;
    if (at("^")) negated = true, ++i_;
    auto result = operand(open, /*first=*/true);
    while (true) {
      check(i_ < p_.size(), where(open), "unterminated character class");
      if (p_[i_] == ']') {
        ++i_;
        break;
      }
      CharSet::Kind kind;
      if (at("&&")) kind = CharSet::Kind::And;
      else if (at("--")) kind = CharSet::Kind::Minus;
      else kind = CharSet::Kind::Xor;  // operand() stops only at ']' or an operator
      i_ += 2;
      auto combined = std::make_unique<CharSet>();
      combined->kind = kind;
      combined->parts.push_back(std::move(result));
      combined->parts.push_back(operand(open, /*first=*/false));
      result = std::move(combined);
    }
    if (negated) {
      if (result->kind == CharSet::Kind::Items) result->negated = !result->negated;
      else result->negated = true;
    }
    --class_depth_;
    return result;
  }

  bool at_operator() const { return at("&&") || at("--") || at("~~"); }

  // A union of items and nested classes, up to an operator or the closing ']'.
  std::unique_ptr<CharSet> operand(size_t open, bool first) {
    auto items = std::make_unique<CharSet>();
    std::vector<std::unique_ptr<CharSet>> nested;
    bool leading = first;
    while (true) {
      check(i_ < p_.size(), where(open), "unterminated character class");
      const size_t start = i_;
      const char c = p_[i_];
      if (c == ']' && !leading) break;
      if (at_operator()) break;
      leading = false;
      if (c == '[') {
        if (at("[:")) refuse(start, "POSIX class [:name:]: Rust's are ASCII, PCRE2's follow Unicode under UCP");
        ++i_;
        nested.push_back(bracket(start));
        continue;
      }
      std::string item = c == '\\' ? escape(/*in_class=*/true) : class_literal();
      if (at("-") && i_ + 1 < p_.size() && p_[i_ + 1] != ']' && !at("--")) {
        ++i_;
        check(p_[i_] != '[', where(start), "a range cannot end in a class");
        const std::string last = p_[i_] == '\\' ? escape(true) : class_literal();
        item += "-" + last;
      }
      items->items += item;
    }
    if (nested.empty()) return items;
    auto set = std::make_unique<CharSet>();
    set->kind = CharSet::Kind::Union;
    if (!items->items.empty()) set->parts.push_back(std::move(items));
    for (auto& n : nested) set->parts.push_back(std::move(n));
    if (set->parts.size() == 1) return std::move(set->parts[0]);
    return set;
  }

  // A literal character inside a class, escaped where PCRE2 would read it specially.
  std::string class_literal() {
    const char c = p_[i_];
    if (c == '^' || c == '-' || c == ']' || c == '[') {
      ++i_;
      return std::string("\\") + c;
    }
    return take_char();
  }
};

// The contents of a Python string literal starting at `at` (r"..", "..", r"""..""", '..').
std::string python_literal(const std::string& text, size_t& at, const std::string& path) {
  bool raw = false;
  if (text[at] == 'r' || text[at] == 'R') raw = true, ++at;
  const char quote = text[at];
  const bool triple = text.compare(at, 3, std::string(3, quote)) == 0;
  const std::string delimiter = triple ? std::string(3, quote) : std::string(1, quote);
  at += delimiter.size();
  std::string value;
  while (true) {
    check(at < text.size(), path, ": unterminated string literal in pat_str");
    if (text.compare(at, delimiter.size(), delimiter) == 0) break;
    if (text[at] == '\\' && !raw) {
      check(at + 1 < text.size(), path, ": unterminated string literal in pat_str");
      const char e = text[at + 1];
      if (e == '\\' || e == quote) value += e;
      else if (e == 'n') value += '\n';
      else if (e == 't') value += '\t';
      else if (e == 'r') value += '\r';
      else value += std::string("\\") + e;  // Python keeps unknown escapes such as \p as written
      at += 2;
      continue;
    }
    value += text[at++];
  }
  at += delimiter.size();
  return value;
}

void skip_space_and_comments(const std::string& text, size_t& at) {
  while (at < text.size()) {
    if (std::isspace(static_cast<unsigned char>(text[at]))) ++at;
    else if (text[at] == '#') at = text.find('\n', at) == std::string::npos ? text.size() : text.find('\n', at);
    else break;
  }
}

}  // namespace

std::string tiktoken_to_pcre2(std::string_view tiktoken_pattern) { return Translator(tiktoken_pattern).run(); }

std::string read_tokenization_py_pattern(const std::string& path) {
  const std::string text = read_text_file(path);
  const size_t assignment = text.find("pat_str");
  check(assignment != std::string::npos, path, ": no pat_str assignment (expected pat_str = \"|\".join([...]))");
  size_t at = text.find('=', assignment);
  check(at != std::string::npos, path, ": pat_str is not assigned");
  ++at;
  skip_space_and_comments(text, at);
  const auto is_quote = [&](size_t k) {
    if (k < text.size() && (text[k] == 'r' || text[k] == 'R')) ++k;
    return k < text.size() && (text[k] == '"' || text[k] == '\'');
  };
  if (text.compare(at, 9, "\"|\".join(") == 0 || text.compare(at, 9, "'|'.join(") == 0) {
    at = text.find('(', at) + 1;
    skip_space_and_comments(text, at);
    check(at < text.size() && text[at] == '[', path, ": expected a list after \"|\".join( in pat_str");
    ++at;
    std::string joined;
    int count = 0;
    while (true) {
      skip_space_and_comments(text, at);
      check(at < text.size(), path, ": unterminated list in pat_str");
      if (text[at] == ']') break;
      check(is_quote(at), path, ": pat_str's list holds something other than string literals at byte ", at);
      joined += (count++ ? "|" : "") + python_literal(text, at, path);
      skip_space_and_comments(text, at);
      if (at < text.size() && text[at] == ',') ++at;
    }
    check(count > 0, path, ": pat_str joins an empty list");
    return joined;
  }
  check(is_quote(at), path, ": pat_str is neither a string literal nor \"|\".join([...]) of literals");
  return python_literal(text, at, path);
}

}  // namespace k2f::data
