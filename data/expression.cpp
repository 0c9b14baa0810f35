#include "data/expression.h"

#include <cctype>

#include "base/error.h"

namespace k2f::data {
namespace {

// Recursive descent: expr = term (('+'|'-') term)*; term = unary (('*'|'/') unary)*;
// unary = '-' unary | '(' expr ')' | digits.
class Parser {
 public:
  Parser(const std::string& text, const ExpressionLimits& limits) : text_(text), limits_(limits) {}

  int64_t parse() {
    const int64_t value = expr(0);
    skip_space();
    check(pos_ == text_.size(), "unexpected '", text_[pos_], "' at ", pos_);
    return value;
  }

 private:
  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool accept(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  int64_t expr(int64_t depth) {
    int64_t value = term(depth);
    while (true) {
      if (accept('+')) {
        const int64_t rhs = term(depth);
        check(!__builtin_add_overflow(value, rhs, &value), "overflow in addition");
      } else if (accept('-')) {
        const int64_t rhs = term(depth);
        check(!__builtin_sub_overflow(value, rhs, &value), "overflow in subtraction");
      } else {
        return value;
      }
    }
  }
  int64_t term(int64_t depth) {
    int64_t value = unary(depth);
    while (true) {
      if (accept('*')) {
        const int64_t rhs = unary(depth);
        check(!__builtin_mul_overflow(value, rhs, &value), "overflow in multiplication");
      } else if (accept('/')) {
        const int64_t rhs = unary(depth);
        check(rhs != 0, "division by zero");
        check(value % rhs == 0, value, " / ", rhs, " is not an integer");
        value /= rhs;
      } else {
        return value;
      }
    }
  }
  int64_t unary(int64_t depth) {
    check(depth < limits_.max_depth, "nesting deeper than ", limits_.max_depth);
    if (accept('-')) {
      const int64_t v = unary(depth + 1);
      check(v != INT64_MIN, "overflow in negation");
      return -v;
    }
    if (accept('(')) {
      const int64_t v = expr(depth + 1);
      check(accept(')'), "expected ')' at ", pos_);
      return v;
    }
    skip_space();
    check(pos_ < text_.size(), "unexpected end of expression");
    check(std::isdigit(static_cast<unsigned char>(text_[pos_])), "unexpected '", text_[pos_], "' at ", pos_);
    int64_t value = 0;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) {
      check(!__builtin_mul_overflow(value, int64_t{10}, &value) &&
                !__builtin_add_overflow(value, int64_t{text_[pos_] - '0'}, &value),
            "number too large");
      ++pos_;
    }
    return value;
  }

  const std::string& text_;
  const ExpressionLimits& limits_;
  size_t pos_ = 0;
};

}  // namespace

int64_t evaluate_expression(const std::string& text, const ExpressionLimits& limits) {
  check(static_cast<int64_t>(text.size()) <= limits.max_chars, "expression longer than ", limits.max_chars,
        " characters");
  return Parser(text, limits).parse();
}

}  // namespace k2f::data
