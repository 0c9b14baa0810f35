// The blocking collectives of comm.h beyond the all-to-all (all_to_all.cpp): maximum and gather.
#include "parallel/comm.h"

#include "base/error.h"

namespace k2f::parallel {

void all_reduce_max(const Group& group, torch::Tensor& tensor) {
  check(group.defined(), "all_reduce_max: this rank is not in the group");
  std::vector<torch::Tensor> tensors{tensor};
  c10d::AllreduceOptions options;
  options.reduceOp = c10d::ReduceOp::MAX;
  group->allreduce(tensors, options)->wait();
}

std::vector<torch::Tensor> all_gather(const Group& group, const torch::Tensor& tensor) {
  check(group.defined(), "all_gather: this rank is not in the group");
  std::vector<torch::Tensor> inputs{tensor.contiguous()};
  std::vector<std::vector<torch::Tensor>> outputs(1);
  for (int r = 0; r < group->getSize(); ++r) outputs[0].push_back(torch::empty_like(inputs[0]));
  group->allgather(outputs, inputs)->wait();
  return outputs[0];
}

}  // namespace k2f::parallel
