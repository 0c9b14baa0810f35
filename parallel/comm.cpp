// The collectives of comm.h beyond the all-to-all (all_to_all.cpp): maximum, gather, send and receive.
#include "parallel/comm.h"

#include <algorithm>

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

std::vector<std::string> all_gather_strings(const Group& group, const std::string& text) {
  const auto lengths = all_gather(group, torch::tensor({static_cast<int64_t>(text.size())}, torch::kInt64));
  int64_t longest = 0;
  for (const auto& length : lengths) longest = std::max(longest, length.item<int64_t>());
  auto bytes = torch::zeros({std::max<int64_t>(longest, 1)}, torch::kUInt8);  // never an empty collective
  std::copy(text.begin(), text.end(), bytes.data_ptr<uint8_t>());
  std::vector<std::string> texts;
  const auto gathered = all_gather(group, bytes);
  for (size_t r = 0; r < gathered.size(); ++r) {
    const auto* data = gathered[r].data_ptr<uint8_t>();
    texts.emplace_back(data, data + lengths[r].item<int64_t>());
  }
  return texts;
}

c10::intrusive_ptr<c10d::Work> send_async(const Group& group, const torch::Tensor& tensor, int peer, int tag) {
  check(group.defined(), "send: this rank is not in the group");
  check(tensor.is_contiguous(), "send: the tensor must be contiguous");
  std::vector<torch::Tensor> tensors{tensor};
  return group->send(tensors, peer, tag);
}

void receive(const Group& group, torch::Tensor& tensor, int peer, int tag) {
  check(group.defined(), "receive: this rank is not in the group");
  check(tensor.is_contiguous(), "receive: the tensor must be contiguous");
  std::vector<torch::Tensor> tensors{tensor};
  group->recv(tensors, peer, tag)->wait();
}

}  // namespace k2f::parallel
