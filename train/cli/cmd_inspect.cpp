// `k2forge inspect`: parameter counts and memory of a config (--hf-config) or an HF directory
// (--model), computed by formula so the 1T configuration is counted without allocating it.
#include <filesystem>
#include <iomanip>
#include <iostream>

#include "base/error.h"
#include "model/param_count.h"
#include "train/cli/command.h"

namespace k2f::cli {
namespace {

// Bytes of the weights when routed experts are INT4 (group 32, bf16 scales) and the rest bf16.
double int4_expert_bytes(const model::ParameterCounts& n) {
  const double experts = static_cast<double>(n.routed_experts);
  return experts * (0.5 + 2.0 / 32.0) + static_cast<double>(n.total() - n.routed_experts) * 2.0;
}

}  // namespace

int run_inspect(const Args& args) {
  cxxopts::Options options("k2forge inspect", "Total and active parameters, per-part breakdown, memory by dtype");
  options.add_options()("hf-config", "an HF config.json", cxxopts::value<std::string>())(
      "model", "an HF model directory", cxxopts::value<std::string>())("json", "print JSON");
  bool help = false;
  const auto parsed = parse_args(options, args, help);
  if (help) return 0;
  check(parsed.count("hf-config") + parsed.count("model") == 1, "give exactly one of --hf-config FILE or --model DIR");
  const std::string path = parsed.count("hf-config")
                               ? parsed["hf-config"].as<std::string>()
                               : (std::filesystem::path(parsed["model"].as<std::string>()) / "config.json").string();
  const auto config = model::ModelConfig::from_hf_file(path);
  const auto counts = count_parameters(config);
  Json report = counts.to_json();
  report["memory_bytes"] = {{"fp32", counts.total() * 4},
                            {"bf16", counts.total() * 2},
                            {"int4_routed_experts_bf16_rest", static_cast<int64_t>(int4_expert_bytes(counts))}};
  if (parsed.count("json")) {
    std::cout << report.dump(2) << std::endl;
    return 0;
  }
  std::cout << path << "\n"
            << "  total parameters:  " << counts.total() << "\n"
            << "  active per token:  " << counts.active() << "\n";
  for (auto it = report["breakdown"].begin(); it != report["breakdown"].end(); ++it)
    std::cout << "    " << std::left << std::setw(24) << it.key() << it.value().get<int64_t>() << "\n";
  for (auto it = report["memory_bytes"].begin(); it != report["memory_bytes"].end(); ++it)
    std::cout << "  memory " << std::left << std::setw(32) << it.key() << std::fixed << std::setprecision(1)
              << it.value().get<int64_t>() / 1e9 << " GB\n";
  return 0;
}

}  // namespace k2f::cli
