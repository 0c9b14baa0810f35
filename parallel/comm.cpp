// The collectives of comm.h beyond the all-to-all (all_to_all.cpp): sums and maxima, broadcast,
// gathers, send and receive, the move of each tensor to its group's device and back, and the clock
// of time spent blocked on them.
#include "parallel/comm.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <nlohmann/json.hpp>

#include "base/error.h"

namespace k2f::parallel {

namespace {
std::atomic<int64_t> blocked_nanoseconds{0};
}

void wait_for(const c10::intrusive_ptr<c10d::Work>& work) {
  const auto start = std::chrono::steady_clock::now();
  work->wait();
  blocked_nanoseconds += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
}

double blocked_seconds() { return static_cast<double>(blocked_nanoseconds.load()) * 1e-9; }

c10::Device group_device(const Group& group) {
  check(group.defined(), "group_device: this rank is not in the group");
  if (group->getBackendName() != "nccl") return c10::Device(c10::kCPU);
  // The device init (DistributedContext::use_backend) made current for this rank; no CUDA header needed.
  return c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->getDevice();
}

torch::Tensor on_group_device(const Group& group, const torch::Tensor& tensor) {
  const auto device = group_device(group);
  return tensor.device() == device ? tensor.contiguous() : tensor.to(device).contiguous();
}

namespace {

// Brings the result of an in-place collective on `staged` (on_group_device's answer) back into `tensor`.
void write_back(const torch::Tensor& staged, torch::Tensor& tensor) {
  if (!staged.is_same(tensor)) tensor.copy_(staged);
}

void reduce_in_place(const Group& group, torch::Tensor& tensor, c10d::ReduceOp::RedOpType op, const char* what) {
  check(group.defined(), what, ": this rank is not in the group");
  std::vector<torch::Tensor> tensors{on_group_device(group, tensor)};
  c10d::AllreduceOptions options;
  options.reduceOp = op;
  wait_for(group->allreduce(tensors, options));
  write_back(tensors[0], tensor);
}

}  // namespace

void all_reduce_sum(const Group& group, torch::Tensor& tensor) {
  reduce_in_place(group, tensor, c10d::ReduceOp::SUM, "all_reduce_sum");
}

void all_reduce_max(const Group& group, torch::Tensor& tensor) {
  reduce_in_place(group, tensor, c10d::ReduceOp::MAX, "all_reduce_max");
}

void broadcast(const Group& group, torch::Tensor& tensor, int root) {
  check(group.defined(), "broadcast: this rank is not in the group");
  std::vector<torch::Tensor> tensors{on_group_device(group, tensor)};
  c10d::BroadcastOptions options;
  options.rootRank = root;
  wait_for(group->broadcast(tensors, options));
  write_back(tensors[0], tensor);
}

std::vector<torch::Tensor> all_gather(const Group& group, const torch::Tensor& tensor) {
  check(group.defined(), "all_gather: this rank is not in the group");
  std::vector<torch::Tensor> inputs{on_group_device(group, tensor)};
  std::vector<std::vector<torch::Tensor>> outputs(1);
  for (int r = 0; r < group->getSize(); ++r) outputs[0].push_back(torch::empty_like(inputs[0]));
  wait_for(group->allgather(outputs, inputs));
  for (auto& gathered : outputs[0]) gathered = gathered.to(tensor.device());
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

NamedTensors gather_named_tensors(const Group& group, const NamedTensors& local) {
  check(group.defined(), "gather_named_tensors: this rank is not in the group");
  nlohmann::json headers = nlohmann::json::array();
  for (const auto& [name, t] : local)
    headers.push_back({{"name", name}, {"dtype", static_cast<int>(t.scalar_type())}, {"shape", t.sizes().vec()}});
  const auto all_headers = all_gather_strings(group, headers.dump());
  if (group->getRank() != 0) {
    for (const auto& [name, t] : local) wait_for(send_async(group, t.detach().contiguous(), 0, 0));
    return {};
  }
  NamedTensors gathered = local;
  std::set<std::string> names;
  for (const auto& [name, t] : local) names.insert(name);
  for (size_t r = 1; r < all_headers.size(); ++r) {
    for (const auto& header : nlohmann::json::parse(all_headers[r])) {
      const auto dtype = static_cast<c10::ScalarType>(header.at("dtype").get<int>());
      auto tensor = torch::empty(header.at("shape").get<std::vector<int64_t>>(), torch::TensorOptions().dtype(dtype));
      receive(group, tensor, static_cast<int>(r), 0);
      const auto name = header.at("name").get<std::string>();
      if (names.insert(name).second) gathered.emplace_back(name, tensor);
    }
  }
  return gathered;
}

c10::intrusive_ptr<c10d::Work> send_async(const Group& group, const torch::Tensor& tensor, int peer, int tag) {
  check(group.defined(), "send: this rank is not in the group");
  check(tensor.is_contiguous(), "send: the tensor must be contiguous");
  std::vector<torch::Tensor> tensors{on_group_device(group, tensor)};  // the work keeps a copy alive
  return group->send(tensors, peer, tag);
}

void receive(const Group& group, torch::Tensor& tensor, int peer, int tag) {
  check(group.defined(), "receive: this rank is not in the group");
  check(tensor.is_contiguous(), "receive: the tensor must be contiguous");
  std::vector<torch::Tensor> tensors{on_group_device(group, tensor)};
  wait_for(group->recv(tensors, peer, tag));
  write_back(tensors[0], tensor);
}

}  // namespace k2f::parallel
