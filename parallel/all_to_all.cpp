#include "parallel/all_to_all.h"

#include <numeric>

#include <c10/util/accumulate.h>
#include <torch/csrc/autograd/custom_function.h>

#include "base/error.h"

namespace k2f::parallel {

namespace {

int64_t total(const std::vector<int64_t>& counts) { return std::accumulate(counts.begin(), counts.end(), int64_t{0}); }

// The autograd node: forward exchanges along (send, recv), backward along (recv, send).
struct AllToAllFunction : public torch::autograd::Function<AllToAllFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& rows_RD, Group group,
                               std::vector<int64_t> send_rows, std::vector<int64_t> recv_rows) {
    ctx->saved_data["group"] = c10::IValue::make_capsule(group);
    ctx->saved_data["send_rows"] = send_rows;
    ctx->saved_data["recv_rows"] = recv_rows;
    return all_to_all_rows(group, rows_RD, send_rows, recv_rows);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto group = c10::static_intrusive_pointer_cast<GroupBase>(ctx->saved_data["group"].toCapsule());
    const auto send_rows = ctx->saved_data["send_rows"].toIntVector();
    const auto recv_rows = ctx->saved_data["recv_rows"].toIntVector();
    auto grad_in = all_to_all_rows(group, grads[0], recv_rows, send_rows);
    return {grad_in, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor all_to_all_rows(const Group& group, const torch::Tensor& input, const std::vector<int64_t>& send_rows,
                              const std::vector<int64_t>& recv_rows) {
  check(group.defined(), "all_to_all_rows: this rank is not in the group");
  const auto size = static_cast<size_t>(group->getSize());
  check(send_rows.size() == size && recv_rows.size() == size, "all_to_all_rows: ", send_rows.size(), " send and ",
        recv_rows.size(), " receive counts for a group of ", size, " ranks");
  check(input.dim() >= 1 && total(send_rows) == input.size(0), "all_to_all_rows: send counts add up to ",
        total(send_rows), " rows, the input has ", input.dim() >= 1 ? input.size(0) : 0);
  auto out_sizes = input.sizes().vec();
  out_sizes[0] = total(recv_rows);
  const auto staged = on_group_device(group, input);
  auto output = torch::empty(out_sizes, staged.options());
  // Rows travel as bytes: the splits stay in rows and every dtype works on every backend.
  const int64_t row_bytes = c10::multiply_integers(input.sizes().slice(1)) * input.element_size();
  auto in_bytes = staged.view({-1}).view(torch::kUInt8).view({input.size(0), row_bytes});
  auto out_bytes = output.view({-1}).view(torch::kUInt8).view({out_sizes[0], row_bytes});
  auto send = send_rows;
  auto recv = recv_rows;
  wait_for(group->alltoall_base(out_bytes, in_bytes, recv, send));
  return output.to(input.device());
}

torch::Tensor differentiable_all_to_all(const Group& group, const torch::Tensor& rows_RD,
                                        const std::vector<int64_t>& send_rows, const std::vector<int64_t>& recv_rows) {
  return AllToAllFunction::apply(rows_RD, group, send_rows, recv_rows);
}

}  // namespace k2f::parallel
