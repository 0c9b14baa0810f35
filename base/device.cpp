#include "base/device.h"

#include <torch/cuda.h>

#include "base/error.h"

namespace k2f {

bool built_with_cuda() {
#if K2F_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() { return built_with_cuda() ? static_cast<int>(torch::cuda::device_count()) : 0; }

c10::Device parse_device(const std::string& name, const std::string& what) {
  check(name == "cpu" || name.rfind("cuda", 0) == 0, what, " (\"", name, "\"): expected cpu, cuda or cuda:N");
  if (name == "cpu") return c10::Device(c10::kCPU);
  check(built_with_cuda(), what, " (\"", name,
        "\"): this k2forge was built against a LibTorch without CUDA (rebuild with a CUDA LibTorch, see README)");
  c10::DeviceIndex index = -1;
  if (name != "cuda") {
    check(name.size() > 5 && name[4] == ':', what, " (\"", name, "\"): expected cpu, cuda or cuda:N");
    size_t used = 0;
    int parsed = -1;
    try {
      parsed = std::stoi(name.substr(5), &used);
    } catch (const std::exception&) {
      used = 0;
    }
    check(used == name.size() - 5 && parsed >= 0, what, " (\"", name, "\"): the device index must be a number >= 0");
    index = static_cast<c10::DeviceIndex>(parsed);
  }
  const int visible = cuda_device_count();
  check(visible > 0, what, " (\"", name, "\"): no CUDA device is visible to this process");
  check(index < visible, what, " (\"", name, "\"): only ", visible, " CUDA device(s) are visible");
  return c10::Device(c10::kCUDA, index < 0 ? 0 : index);
}

c10::Device device_for_local_rank(const c10::Device& device, int local_rank) {
  if (!device.is_cuda()) return device;
  const int visible = cuda_device_count();
  check(visible > 0, "device ", device.str(), ": no CUDA device is visible to this process");
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank % visible));
}

void synchronize(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

}  // namespace k2f
