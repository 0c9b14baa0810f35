// Exact integer arithmetic over a tiny expression language: integers, + - * /, unary minus and
// parentheses. It is the one evaluator behind the synthetic reasoning task's answers and the
// calculator tool the model calls, so the tool and the checker can never disagree. Inputs are
// untrusted (model output): length, nesting and magnitude are bounded, and overflow, division by
// zero and inexact division are errors with a message the model can read.
#pragma once

#include <cstdint>
#include <string>

namespace k2f::data {

struct ExpressionLimits {
  int64_t max_chars = 256;  // longer input is refused before parsing
  int64_t max_depth = 32;   // parenthesis / unary nesting
};

// The value of `text`; throws k2f::Error ("division by zero", "unexpected ')' at 7", ...).
int64_t evaluate_expression(const std::string& text, const ExpressionLimits& limits = {});

}  // namespace k2f::data
