#include "train/bench_train.h"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <random>

#include "base/device.h"
#include "base/log.h"
#include "data/token_store_writer.h"
#include "model/hf_export.h"
#include "model/param_count.h"
#include "model/weight_source.h"
#include "quant/int4_export.h"
#include "train/bench_model.h"
#include "parallel/comm.h"
#include "train/parallel_runtime.h"
#include "train/trainer.h"

namespace k2f::train {
namespace fs = std::filesystem;

namespace {

// A store of random documents large enough for the benchmark's steps, in a scratch directory.
std::string write_bench_store(const fs::path& dir, int64_t vocab, int64_t tokens_needed) {
  data::TokenStoreWriterOptions options;
  options.vocab_size = vocab;
  options.tokenizer_hash = "bench-random";
  const std::string path = (dir / "bench.h5").string();
  data::TokenStoreWriter writer(path, options);
  std::mt19937_64 rng(7);
  for (int64_t written = 0; written < tokens_needed;) {
    std::vector<int32_t> document(200 + rng() % 1800);
    for (auto& t : document) t = static_cast<int32_t>(rng() % vocab);
    writer.append_document(document);
    written += static_cast<int64_t>(document.size());
  }
  writer.finish();
  return path;
}

// The timed steps of one run: their summed times and mean rates.
struct TimedSteps {
  double seconds = 0, forward = 0, backward = 0, optimizer = 0, data = 0, communication = 0, pipeline_wait = 0;
  double tokens_per_s = 0, mfu = 0, flops = 0;
  Json losses = Json::array();
  int64_t trained_parameters = 0, optimizer_state_bytes = 0;
};

TimedSteps time_steps(Trainer& trainer, int64_t steps) {
  trainer.train_step(0);  // warm-up
  TimedSteps t;
  for (int64_t s = 1; s <= steps; ++s) {
    const auto m = trainer.train_step(s);
    t.seconds += m.seconds;
    t.forward += m.forward_seconds;
    t.backward += m.backward_seconds;
    t.optimizer += m.optimizer_seconds;
    t.data += m.data_seconds;
    t.communication += m.communication_seconds;
    t.pipeline_wait += m.pipeline_wait_seconds;
    t.tokens_per_s += m.tokens_per_s / steps;
    t.mfu += m.mfu / steps;
    t.flops += m.model_flops_per_s / steps;
    t.losses.push_back(m.loss);
  }
  for (const auto& [name, tensor] : trainer.trained_parameters()) t.trained_parameters += tensor.numel();
  t.optimizer_state_bytes = trainer.optimizer_state_bytes();
  return t;
}

Json time_split(const TimedSteps& t) {
  return {{"forward", t.forward / t.seconds}, {"backward", t.backward / t.seconds},
          {"optimizer", t.optimizer / t.seconds}, {"data", t.data / t.seconds}};
}

// The recipe's model from its seed, written as K2 Thinking ships it (routed experts INT4, group
// 32, the rest bf16): the base a LoRA benchmark adapts.
std::string write_int4_base(const TrainOptions& options, const fs::path& dir) {
  model::KimiForCausalLM lm(options.model);
  model::init_weights(lm, options.seed);
  model::ModuleSource source(*lm);
  quant::Int4ExportOptions int4;
  const std::string out = (dir / "int4-base").string();
  model::write_hf_directory(quant::int4_export_tensors(source, int4),
                            quant::int4_export_config(options.model, int4.scheme), out, uint64_t{4} << 30);
  return out;
}

}  // namespace

Json bench_train(const Recipe& recipe, const TrainBenchOptions& bench) {
  auto options = TrainOptions::from_recipe(recipe);
  const fs::path scratch = fs::temp_directory_path() / ("k2forge-bench-train-" + std::to_string(::getpid()));
  fs::remove_all(scratch);
  fs::create_directories(scratch);
  Json report;
  try {
    const int64_t tokens_per_step = options.global_batch_size * (options.seq_len + 1);
    options.data_paths = {write_bench_store(scratch, options.model.vocab_size, tokens_per_step * (bench.steps + 2))};
    options.data_weights.clear();
    options.data_tokenizer.clear();  // random token ids: no tokenizer to match
    options.run_dir = (scratch / "run").string();
    options.steps = bench.steps + 1;
    options.schedule.warmup_steps = 0;
    options.schedule.decay_steps = 0;
    options.tensorboard = false;
    const auto device = parse_device(options.device, "train.device");
    const double gemm_flops = measure_bf16_gemm_flops(device);
    options.peak_flops = gemm_flops;
    const auto context = join_launched_ranks(options.collective_timeout_s);
    std::optional<Trainer> trainer;
    trainer.emplace(options, TrainerRunOptions{}, context);
    const auto& parallel = trainer->parallel_runtime();
    const auto t = time_steps(*trainer, bench.steps);
    // Every rank's split (shares of its step time): the stages of a pipeline differ.
    const std::vector<double> local{t.seconds, t.communication - t.pipeline_wait, t.pipeline_wait, t.data};
    std::vector<double> mine(local.size() * static_cast<size_t>(parallel.world_size()), 0.0);
    std::copy(local.begin(), local.end(), mine.begin() + static_cast<int64_t>(local.size()) * parallel.rank());
    const auto all = parallel.sum_over_world(mine);
    Json per_rank = Json::array();
    for (int r = 0; r < parallel.world_size(); ++r) {
      const double* v = all.data() + local.size() * static_cast<size_t>(r);
      per_rank.push_back({{"rank", r},
                          {"compute", (v[0] - v[1] - v[2] - v[3]) / v[0]},
                          {"communication", v[1] / v[0]},
                          {"pipeline_wait", v[2] / v[0]},
                          {"data", v[3] / v[0]}});
    }
    const auto layout = parallel.layout();
    const int64_t micro_batches = options.accumulation_steps(layout.dp);
    const bool is_main = parallel.is_main();
    const int world_size = parallel.world_size();
    const double tokens_timed = static_cast<double>(options.global_batch_size * options.seq_len * bench.steps);

    Json lora;
    if (bench.lora_rank > 0) {
      trainer.reset();  // the full run's memory goes before the LoRA run's comes
      auto lora_options = options;
      const auto write_base = [&] {
        if (is_main) write_int4_base(options, scratch);
      };
      if (context) {
        context->check_on_all_ranks(write_base);  // every rank waits for the base
      } else {
        write_base();
      }
      lora_options.init_from = (scratch / "int4-base").string();
      lora_options.run_dir = (scratch / "lora-run").string();
      lora_options.lora.rank = bench.lora_rank;
      lora_options.qat = false;
      lora_options.optimizer.name = lora_options.lora_optimizer == "muon" ? "muonclip" : "adamw";
      trainer.emplace(lora_options, TrainerRunOptions{}, context);
      const auto l = time_steps(*trainer, bench.steps);
      lora = {{"rank", bench.lora_rank},
              {"base", "the same model, routed experts INT4 (W4A16, frozen), the rest frozen"},
              {"targets", lora_options.lora.modules.targets},
              {"optimizer", lora_options.optimizer.name},
              {"trained_parameters", l.trained_parameters},
              {"optimizer_state_bytes", l.optimizer_state_bytes},
              {"seconds_per_step", l.seconds / bench.steps},
              {"tokens_per_s", l.tokens_per_s},
              {"forward_backward_tokens_per_s", tokens_timed / (l.forward + l.backward)},
              {"time_split", time_split(l)},
              {"losses", l.losses},
              {"full_over_lora_seconds_per_step", t.seconds / l.seconds}};
    }
    if (!is_main) {
      trainer.reset();
      fs::remove_all(scratch);
      return Json();
    }
    report = {{"benchmark", "train"},
              {"recipe", recipe.source()},
              {"device", device.str()},
              {"world_size", world_size},
              {"layout", {{"pp", layout.pp}, {"dp", layout.dp}, {"ep", layout.ep}, {"virtual_stages", layout.virtual_stages},
                          {"schedule", layout.schedule}, {"zero1", layout.zero1}}},
              {"parameters", model::count_parameters(options.model).total()},
              {"active_parameters", model::count_parameters(options.model).active()},
              {"threads", at::get_num_threads()},
              {"dtype", recipe.get_string("train.dtype")},
              {"optimizer", options.optimizer.name},
              {"global_batch_size", options.global_batch_size},
              {"micro_batch_size", options.micro_batch_size},
              {"micro_batches_per_rank", micro_batches},
              {"seq_len", options.seq_len},
              {"steps", bench.steps},
              {"trained_parameters", t.trained_parameters},
              {"optimizer_state_bytes", t.optimizer_state_bytes},
              {"seconds_per_step", t.seconds / bench.steps},
              {"tokens_per_s", t.tokens_per_s},
              // forward + backward alone: what an eager framework's training step without the optimizer does
              {"forward_backward_tokens_per_s", tokens_timed / (t.forward + t.backward)},
              {"model_gflops", t.flops / 1e9},
              {"gemm_bf16_gflops", gemm_flops / 1e9},
              {"mfu", t.mfu},
              // Rank 0's shares of its step time. communication: blocked on ranks of its own stage (expert
              // all-to-all, gradient sync, ZeRO-1, reductions); pipeline_wait: blocked on another stage
              // (the bubble plus activation transfers); compute: the rest but data loading.
              {"time_split", time_split(t)},
              {"time_split_per_rank", per_rank},
              // The schedule's idle share of a stage when every pass takes the same time: (pp-1)/(M x V + pp-1).
              {"ideal_bubble_share", layout.pp == 1 ? 0.0
                                                    : static_cast<double>(layout.pp - 1) /
                                                          static_cast<double>(micro_batches * layout.virtual_stages + layout.pp - 1)},
              {"losses", t.losses}};
    if (!lora.is_null()) report["lora"] = lora;
    trainer.reset();
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(scratch, ignored);
    throw;
  }
  fs::remove_all(scratch);
  return report;
}

}  // namespace k2f::train
