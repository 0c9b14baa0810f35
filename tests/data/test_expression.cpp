// data/expression.cpp against hand-computed values, and each error a model's call can cause.
#include <gtest/gtest.h>

#include "data/expression.h"
#include "test_util.h"

namespace k2f::data {
namespace {

using testing::expect_error;

TEST(Expression, PrecedenceParenthesesAndUnaryMinus) {
  EXPECT_EQ(evaluate_expression("(17 + 5) * 3"), 66);
  EXPECT_EQ(evaluate_expression("17 + 5 * 3"), 32);
  EXPECT_EQ(evaluate_expression("  -(2 - 9) * -3 "), -21);
  EXPECT_EQ(evaluate_expression("100 / 4 / 5"), 5);
  EXPECT_EQ(evaluate_expression("10 - 4 - 3"), 3);
}

TEST(Expression, ErrorsSayWhatIsWrong) {
  expect_error([] { evaluate_expression("7 / 0"); }, {"division by zero"});
  expect_error([] { evaluate_expression("7 / 2"); }, {"7 / 2 is not an integer"});
  expect_error([] { evaluate_expression("3 * x"); }, {"unexpected 'x' at 4"});
  expect_error([] { evaluate_expression("(1 + 2"); }, {"expected ')'"});
  expect_error([] { evaluate_expression("9223372036854775807 + 1"); }, {"overflow in addition"});
  expect_error([] { evaluate_expression("99999999999999999999"); }, {"number too large"});
  expect_error([] { evaluate_expression(std::string(300, '1')); }, {"longer than 256"});
  expect_error([] { evaluate_expression(std::string(40, '(') + "1" + std::string(40, ')')); }, {"nesting deeper than 32"});
  expect_error([] { evaluate_expression(""); }, {"unexpected end"});
}

}  // namespace
}  // namespace k2f::data
