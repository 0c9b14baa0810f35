// Log-prob tables as `k2forge score` writes them (one array of per-token values per row), and the
// largest per-token difference between two of them, for the end-to-end tests that compare scores.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "base/json_io.h"

namespace k2f::testing {

inline double max_abs_difference(const Json& a, const Json& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    EXPECT_EQ(a[i].size(), b[i].size()) << "row " << i;
    for (size_t t = 0; t < std::min(a[i].size(), b[i].size()); ++t)
      worst = std::max(worst, std::abs(a[i][t].get<double>() - b[i][t].get<double>()));
  }
  return worst;
}

}  // namespace k2f::testing
