#include "model/weight_source.h"

#include <algorithm>
#include <cctype>

#include "base/error.h"
#include "base/log.h"
#include "model/kimi_model.h"

namespace k2f::model {

namespace {

bool is_floating(torch::ScalarType dtype) { return c10::isFloatingType(dtype); }

}  // namespace

void WeightSource::load_into(const std::string& name, torch::Tensor& target) {
  check(contains(name), description(), ": no tensor \"", name, "\" (the model needs it)");
  const auto found_shape = shape(name);
  check(found_shape == target.sizes().vec(), description(), ": tensor \"", name, "\": expected shape ",
        target.sizes(), ", got ", torch::IntArrayRef(found_shape));
  const auto tensor = load(name);
  check(is_floating(tensor.scalar_type()) == target.is_floating_point(), description(), ": tensor \"", name,
        "\": expected ", target.is_floating_point() ? "a floating dtype" : "an integer dtype", ", got ",
        tensor.scalar_type());
  torch::NoGradGuard no_grad;
  target.copy_(tensor);
}

ModuleSource::ModuleSource(const torch::nn::Module& module) : state_(named_state(module)) {}

std::vector<std::string> ModuleSource::tensor_names() const {
  std::vector<std::string> names;
  for (const auto& item : state_) names.push_back(item.first);
  return names;
}

const torch::Tensor& ModuleSource::find(const std::string& name) const {
  for (const auto& item : state_) {
    if (item.first == name) return item.second;
  }
  fail(description(), ": no tensor \"", name, "\"");
}

bool ModuleSource::contains(const std::string& name) const {
  return std::any_of(state_.begin(), state_.end(), [&](const auto& item) { return item.first == name; });
}

std::vector<int64_t> ModuleSource::shape(const std::string& name) { return find(name).sizes().vec(); }

torch::Tensor ModuleSource::load(const std::string& name) { return find(name).detach().cpu(); }

void load_weights(torch::nn::Module& model, WeightSource& source, const std::set<std::string>& skip) {
  size_t loaded = 0;
  for (auto& [name, target] : named_state(model)) {
    if (skip.count(name)) continue;
    source.load_into(name, target);
    ++loaded;
  }
  log::info("loaded ", loaded, " tensors from ", source.description());
}

std::vector<std::string> natural_order(std::vector<std::string> names) {
  auto less = [](const std::string& a, const std::string& b) {
    size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
      if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
        size_t i_end = i, j_end = j;
        while (i_end < a.size() && std::isdigit(static_cast<unsigned char>(a[i_end]))) ++i_end;
        while (j_end < b.size() && std::isdigit(static_cast<unsigned char>(b[j_end]))) ++j_end;
        // Compare the numbers without converting them (a run may be longer than any integer type).
        size_t x = i, y = j;
        while (x + 1 < i_end && a[x] == '0') ++x;
        while (y + 1 < j_end && b[y] == '0') ++y;
        if (i_end - x != j_end - y) return i_end - x < j_end - y;
        const int order = a.compare(x, i_end - x, b, y, j_end - y);
        if (order != 0) return order < 0;
        i = i_end;
        j = j_end;
      } else {
        if (a[i] != b[j]) return a[i] < b[j];
        ++i;
        ++j;
      }
    }
    return a.size() - i < b.size() - j;
  };
  std::stable_sort(names.begin(), names.end(), less);
  return names;
}

}  // namespace k2f::model
