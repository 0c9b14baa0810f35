// `k2forge export`: writes a model as an HF directory: bf16 or fp32 safetensors shards, or INT4
// pack-quantized exactly as K2 Thinking ships it. The source is an HF directory (any weight format)
// or a k2forge training checkpoint (step-N/); tensors stream from the source's memory-mapped files
// one shard at a time, so the model is never materialised. An INT4 export of a QAT checkpoint uses
// the run's own group size, grid and targets, so it computes exactly what QAT trained.
#include <filesystem>
#include <optional>

#include "base/error.h"
#include "base/log.h"
#include "model/hf_export.h"
#include "quant/int4_export.h"
#include "quant/quantized_hf_source.h"
#include "train/cli/command.h"
#include "train/model_loading.h"

namespace k2f::cli {
namespace {

// The source's tensors and config, whichever kind of directory it is, and its INT4 settings when
// it has any (a QAT checkpoint's, or an INT4 directory's own).
struct ExportSource {
  std::unique_ptr<model::WeightSource> tensors;
  model::ModelConfig config;
  std::optional<quant::QatOptions> int4;
};

ExportSource open_source(const std::string& dir) {
  ExportSource source;
  if (train::is_training_checkpoint(dir)) {
    auto checkpoint = train::open_checkpoint_model(dir);
    source.config = checkpoint.config;
    source.int4 = train::qat_options_from_meta(checkpoint.meta, dir + "/meta.json");
    source.tensors = std::move(checkpoint.tensors);
    return source;
  }
  auto hf = std::make_unique<quant::QuantizedHfSource>(dir);
  source.config = hf->config();
  if (hf->format() == quant::WeightFormat::int4_pack_quantized) {
    source.int4 = quant::QatOptions{{hf->int4_scheme().group_size, quant::Grid::k2}, hf->int4_scheme().modules};
  }
  source.tensors = std::move(hf);
  return source;
}

}  // namespace

int run_export(const Args& args) {
  cxxopts::Options options("k2forge export", "Write a model as an HF directory");
  options.add_options()("checkpoint", "source: an HF model directory or a training checkpoint (run_dir/step-N)", cxxopts::value<std::string>())(
      "out", "output directory (must not exist)", cxxopts::value<std::string>())(
      "format", "hf-bf16, hf-fp32 or hf-int4 (compressed-tensors pack-quantized)", cxxopts::value<std::string>()->default_value("hf-bf16"))(
      "group-size", "hf-int4: group size (default: the QAT run's, else 32)", cxxopts::value<int64_t>())(
      "grid", "hf-int4: k2 or minmax (default: the QAT run's, else k2)", cxxopts::value<std::string>())(
      "ignore", "hf-int4: linears kept bf16, comma-separated paths or re: patterns (default: the QAT run's, else "
      "K2 Thinking's list)", cxxopts::value<std::vector<std::string>>())(
      "max-shard-size", "largest shard in MB", cxxopts::value<int64_t>()->default_value("4096"));
  bool help = false;
  const auto parsed = parse_args(options, args, help);
  if (help) return 0;
  const std::string source_dir = required_option(parsed, "checkpoint", "export");
  const std::string out = required_option(parsed, "out", "export");
  const std::string format = parsed["format"].as<std::string>();
  check(format == "hf-bf16" || format == "hf-fp32" || format == "hf-int4", "--format \"", format,
        "\": expected hf-bf16, hf-fp32 or hf-int4");
  check(format == "hf-int4" || (!parsed.count("group-size") && !parsed.count("grid") && !parsed.count("ignore")),
        "--group-size, --grid and --ignore apply to --format hf-int4 only");
  const int64_t shard_mb = parsed["max-shard-size"].as<int64_t>();
  check(shard_mb > 0, "--max-shard-size (", shard_mb, ") must be positive");
  const uint64_t max_shard_bytes = static_cast<uint64_t>(shard_mb) << 20;

  auto source = open_source(source_dir);
  if (format != "hf-int4") {
    const auto dtype = format == "hf-bf16" ? torch::kBFloat16 : torch::kFloat32;
    model::write_hf_directory(model::plain_export_tensors(*source.tensors, dtype),
                              model::plain_export_config(source.config, dtype), out, max_shard_bytes);
    return 0;
  }
  if (!source.int4) {
    log::info(source_dir, " was not trained with QAT: the INT4 export rounds its weights (post-training quantisation)");
  }
  quant::Int4ExportOptions int4;
  const quant::QatOptions settings = source.int4.value_or(quant::QatOptions{});
  int4.scheme.modules = settings.targets;
  if (parsed.count("ignore")) {
    int4.scheme.modules.ignore = parsed["ignore"].as<std::vector<std::string>>();
    if (source.int4 && int4.scheme.modules.ignore != settings.targets.ignore) {
      log::info("exporting with another --ignore list than the QAT run's: the export will not match the QAT model exactly");
    }
  }
  int4.scheme.group_size = parsed.count("group-size") ? parsed["group-size"].as<int64_t>() : settings.quant.group_size;
  check(int4.scheme.group_size > 0, "--group-size (", int4.scheme.group_size, ") must be positive");
  int4.grid = parsed.count("grid") ? quant::parse_grid(parsed["grid"].as<std::string>()) : settings.quant.grid;
  if (source.int4 && (int4.scheme.group_size != settings.quant.group_size || int4.grid != settings.quant.grid)) {
    log::info("exporting with group size ", int4.scheme.group_size, " / grid ", quant::grid_name(int4.grid),
              " although the source used ", settings.quant.group_size, " / ", quant::grid_name(settings.quant.grid),
              ": the export will not match the QAT model exactly");
  }
  model::write_hf_directory(quant::int4_export_tensors(*source.tensors, int4),
                            quant::int4_export_config(source.config, int4.scheme), out, max_shard_bytes);
  return 0;
}

}  // namespace k2f::cli
