// `k2forge export`: writes a model as an HF directory (bf16 or fp32 safetensors shards, index,
// config.json). The source is an HF directory or a k2forge training checkpoint (step-N/).
#include "base/error.h"
#include "model/hf_checkpoint.h"
#include "train/model_loading.h"
#include "train/cli/command.h"

namespace k2f::cli {

int run_export(const Args& args) {
  cxxopts::Options options("k2forge export", "Write a model as an HF directory");
  options.add_options()("checkpoint", "source: an HF model directory or a training checkpoint (run_dir/step-N)", cxxopts::value<std::string>())(
      "out", "output directory (must not exist)", cxxopts::value<std::string>())(
      "format", "hf-bf16 or hf-fp32", cxxopts::value<std::string>()->default_value("hf-bf16"))(
      "max-shard-size", "largest shard in MB", cxxopts::value<int64_t>()->default_value("4096"));
  bool help = false;
  const auto parsed = parse_args(options, args, help);
  if (help) return 0;
  const std::string source = required_option(parsed, "checkpoint", "export");
  const std::string out = required_option(parsed, "out", "export");
  const std::string format = parsed["format"].as<std::string>();
  model::HfExportOptions export_options;
  if (format == "hf-bf16") {
    export_options.dtype = torch::kBFloat16;
  } else if (format == "hf-fp32") {
    export_options.dtype = torch::kFloat32;
  } else if (format == "hf-int4") {
    fail("--format hf-int4 comes with INT4 QAT (issue 6); this build exports hf-bf16 or hf-fp32");
  } else {
    fail("--format \"", format, "\": expected hf-bf16 or hf-fp32");
  }
  const int64_t shard_mb = parsed["max-shard-size"].as<int64_t>();
  check(shard_mb > 0, "--max-shard-size (", shard_mb, ") must be positive");
  export_options.max_shard_bytes = static_cast<uint64_t>(shard_mb) << 20;

  const auto lm = train::load_model(source);
  model::export_hf_directory(*lm, lm->model->config, out, export_options);
  return 0;
}

}  // namespace k2f::cli
