// The collectives of comm.h beyond the all-to-all and the sum (all_to_all.cpp): maximum, gathers,
// send and receive, and the clock of time spent blocked on them.
#include "parallel/comm.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>

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

void all_reduce_max(const Group& group, torch::Tensor& tensor) {
  check(group.defined(), "all_reduce_max: this rank is not in the group");
  std::vector<torch::Tensor> tensors{tensor};
  c10d::AllreduceOptions options;
  options.reduceOp = c10d::ReduceOp::MAX;
  wait_for(group->allreduce(tensors, options));
}

std::vector<torch::Tensor> all_gather(const Group& group, const torch::Tensor& tensor) {
  check(group.defined(), "all_gather: this rank is not in the group");
  std::vector<torch::Tensor> inputs{tensor.contiguous()};
  std::vector<std::vector<torch::Tensor>> outputs(1);
  for (int r = 0; r < group->getSize(); ++r) outputs[0].push_back(torch::empty_like(inputs[0]));
  wait_for(group->allgather(outputs, inputs));
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
  std::vector<torch::Tensor> tensors{tensor};
  return group->send(tensors, peer, tag);
}

void receive(const Group& group, torch::Tensor& tensor, int peer, int tag) {
  check(group.defined(), "receive: this rank is not in the group");
  check(tensor.is_contiguous(), "receive: the tensor must be contiguous");
  std::vector<torch::Tensor> tensors{tensor};
  wait_for(group->recv(tensors, peer, tag));
}

}  // namespace k2f::parallel
