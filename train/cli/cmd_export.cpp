// `k2forge export`: writes a model as an HF directory: bf16 or fp32 safetensors shards, or INT4
// pack-quantized exactly as K2 Thinking ships it. The source is an HF directory (any weight format)
// or a k2forge training checkpoint (step-N/); tensors stream from the source's memory-mapped files
// one shard at a time, so the model is never materialised. An INT4 export of a QAT checkpoint uses
// the run's own group size, grid and targets, so it computes exactly what QAT trained. A LoRA
// checkpoint exports merged into its base (W + s B A), or as a PEFT adapter directory.
#include <filesystem>
#include <optional>

#include "base/error.h"
#include "base/log.h"
#include "model/hf_export.h"
#include "quant/int4_export.h"
#include "quant/lora.h"
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
    if (const auto lora = train::lora_record_from_meta(checkpoint.meta, dir + "/meta.json")) {
      // A LoRA run: its base with W + s B A merged into every adapted weight, read tensor by tensor.
      train::check_directory_checksums(lora->base, lora->base_files, dir + "/meta.json");
      auto base = open_source(lora->base);
      base.tensors = std::make_unique<quant::LoraMergedSource>(std::move(base.tensors), std::move(checkpoint.tensors),
                                                               lora->options.scale());
      log::info(dir, ": LoRA adapters merged into ", lora->base);
      return base;
    }
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

// The adapters of a LoRA checkpoint as an HF PEFT adapter directory: adapter_config.json and
// adapter_model.safetensors (fp32, PEFT's names), loadable next to the base.
void write_peft_directory(const std::string& dir, const std::string& out) {
  check(train::is_training_checkpoint(dir), "--format peft: ", dir, " is not a training checkpoint (no meta.json)");
  auto checkpoint = train::open_checkpoint_model(dir);
  const auto lora = train::lora_record_from_meta(checkpoint.meta, dir + "/meta.json");
  check(lora.has_value(), "--format peft: ", dir, " is not a LoRA checkpoint (its meta.json has no \"lora\")");
  train::check_directory_checksums(lora->base, lora->base_files, dir + "/meta.json");
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& path : lora->modules) {
    for (const auto& name : {quant::lora_a_name(path), quant::lora_b_name(path)})
      tensors.emplace_back(name, checkpoint.tensors->load(name));
  }
  std::vector<std::string> linear_paths;
  for (const auto& name : open_source(lora->base).tensors->tensor_names()) {
    const std::string module = name.substr(0, name.rfind('.'));
    if (name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0 && quant::is_linear_path(module))
      linear_paths.push_back(module);
  }
  const Json config = quant::peft_adapter_config(lora->options, lora->modules, linear_paths, lora->base);
  model::write_directory_atomically(out, [&](const std::filesystem::path& temporary) {
    model::write_safetensors((temporary / "adapter_model.safetensors").string(), tensors);
    write_text_file_atomic((temporary / "adapter_config.json").string(), config.dump(2) + "\n");
  });
  log::info("exported the adapters of ", lora->modules.size(), " linears (rank ", lora->options.rank, ") to ", out);
}

}  // namespace

int run_export(const Args& args) {
  cxxopts::Options options("k2forge export", "Write a model as an HF directory");
  options.add_options()("checkpoint", "source: an HF model directory or a training checkpoint (run_dir/step-N)", cxxopts::value<std::string>())(
      "out", "output directory (must not exist)", cxxopts::value<std::string>())(
      "format", "hf-bf16, hf-fp32, hf-int4 (compressed-tensors pack-quantized) or peft (a LoRA run's adapters)",
      cxxopts::value<std::string>()->default_value("hf-bf16"))(
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
  check(format == "hf-bf16" || format == "hf-fp32" || format == "hf-int4" || format == "peft", "--format \"", format,
        "\": expected hf-bf16, hf-fp32, hf-int4 or peft");
  check(format == "hf-int4" || (!parsed.count("group-size") && !parsed.count("grid") && !parsed.count("ignore")),
        "--group-size, --grid and --ignore apply to --format hf-int4 only");
  const int64_t shard_mb = parsed["max-shard-size"].as<int64_t>();
  check(shard_mb > 0, "--max-shard-size (", shard_mb, ") must be positive");
  const uint64_t max_shard_bytes = static_cast<uint64_t>(shard_mb) << 20;

  if (format == "peft") {
    write_peft_directory(source_dir, out);
    return 0;
  }
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
