// compressed-tensors style target matching over the model's module tree (see qat_targets.h).
#include "quant/qat_targets.h"

#include <regex>
#include <set>

#include "base/error.h"

namespace k2f::quant {

namespace {

constexpr const char* kRegexPrefix = "re:";
// The class name a compressed-tensors target uses for our linear layer.
constexpr const char* kLinearClassName = "Linear";

bool is_regex_pattern(const std::string& pattern) { return pattern.rfind(kRegexPrefix, 0) == 0; }

}  // namespace

// Not in the anonymous namespace: QatSelector::Compiled (external linkage) holds these, which GCC
// flags (-Wsubobject-linkage) once a unity build includes this file into another.
namespace qat_targets_detail {

// One pattern, its regex compiled once (a 1T model has ~70k linears to test).
class CompiledPattern {
 public:
  explicit CompiledPattern(const std::string& pattern) : pattern_(pattern), is_regex_(is_regex_pattern(pattern)) {
    if (!is_regex_) return;
    try {
      regex_ = std::regex(pattern.substr(3), std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      fail("invalid regex in quantisation pattern \"", pattern, "\": ", e.what());
    }
  }
  bool matches(const std::string& name) const {
    if (!is_regex_) return name == pattern_;
    return std::regex_search(name, regex_, std::regex_constants::match_continuous);
  }

 private:
  std::string pattern_;
  bool is_regex_;
  std::regex regex_;
};

}  // namespace qat_targets_detail

namespace {

using qat_targets_detail::CompiledPattern;

std::vector<CompiledPattern> compile_patterns(const std::vector<std::string>& patterns) {
  std::vector<CompiledPattern> compiled;
  for (const auto& pattern : patterns) compiled.emplace_back(pattern);
  return compiled;
}

bool any_matches(const std::vector<CompiledPattern>& patterns, const std::string& name) {
  for (const auto& pattern : patterns) {
    if (pattern.matches(name)) return true;
  }
  return false;
}

}  // namespace

bool matches_pattern(const std::string& name, const std::string& pattern) {
  return qat_targets_detail::CompiledPattern(pattern).matches(name);
}

struct QatSelector::Compiled {
  bool all_linears = false;
  std::vector<qat_targets_detail::CompiledPattern> targets;
  std::vector<qat_targets_detail::CompiledPattern> ignore;
};

QatSelector::QatSelector(const QatTargets& targets) {
  // "Linear" selects every linear by class; other targets are paths or "re:" patterns.
  auto compiled = std::make_shared<Compiled>();
  std::vector<std::string> path_targets;
  for (const auto& target : targets.targets) {
    if (target == kLinearClassName) {
      compiled->all_linears = true;
    } else {
      path_targets.push_back(target);
    }
  }
  compiled->targets = compile_patterns(path_targets);
  compiled->ignore = compile_patterns(targets.ignore);
  compiled_ = std::move(compiled);
}

bool QatSelector::selects(const std::string& linear_path) const {
  if (!compiled_->all_linears && !any_matches(compiled_->targets, linear_path)) return false;
  return !any_matches(compiled_->ignore, linear_path);
}

bool is_linear_path(const std::string& module_path) {
  static const std::set<std::string> kLinearNames = {"lm_head",  "q_proj",    "q_a_proj",  "q_b_proj",
                                                     "kv_a_proj_with_mqa",    "kv_b_proj", "o_proj",
                                                     "gate_proj", "up_proj", "down_proj"};
  const auto dot = module_path.rfind('.');
  return kLinearNames.count(dot == std::string::npos ? module_path : module_path.substr(dot + 1)) > 0;
}

std::vector<std::pair<std::string, std::shared_ptr<model::LinearImpl>>> qat_target_linears(
    const torch::nn::Module& model, const QatTargets& targets) {
  const QatSelector selector(targets);
  std::vector<std::pair<std::string, std::shared_ptr<model::LinearImpl>>> selected;
  for (const auto& item : model.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    auto linear = std::dynamic_pointer_cast<model::LinearImpl>(item.value());
    if (linear && selector.selects(item.key())) selected.emplace_back(item.key(), std::move(linear));
  }
  return selected;
}

std::vector<std::string> qat_target_weights(const torch::nn::Module& model, const QatTargets& targets) {
  std::vector<std::string> names;
  for (const auto& [path, linear] : qat_target_linears(model, targets)) names.push_back(path + ".weight");
  return names;
}

}  // namespace k2f::quant
