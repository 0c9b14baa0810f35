// The differentiable all-to-all of expert parallelism: forward sends rows to their ranks, backward
// sends the gradient rows back along the reverse routes (the transpose of a permutation-like map
// is the reverse exchange). Every rank of the group must call it, and later its backward, together.
// Legend: R rows, D hidden.
#pragma once

#include "parallel/comm.h"

namespace k2f::parallel {

// rows_RD split by send_rows over the group's ranks -> rows received (recv_rows[r] from rank r).
torch::Tensor differentiable_all_to_all(const Group& group, const torch::Tensor& rows_RD,
                                        const std::vector<int64_t>& send_rows, const std::vector<int64_t>& recv_rows);

}  // namespace k2f::parallel
