#include "train/bench_train.h"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "base/device.h"
#include "base/log.h"
#include "data/token_store_writer.h"
#include "model/param_count.h"
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
    Trainer trainer(options, TrainerRunOptions{}, join_launched_ranks(options.collective_timeout_s));
    const auto& parallel = trainer.parallel_runtime();
    trainer.train_step(0);  // warm-up
    Json steps = Json::array();
    double seconds = 0, forward = 0, backward = 0, optimizer = 0, data = 0, tokens_per_s = 0, mfu = 0, flops = 0;
    double communication = 0, pipeline_wait = 0;
    for (int64_t s = 1; s <= bench.steps; ++s) {
      const auto m = trainer.train_step(s);
      seconds += m.seconds;
      forward += m.forward_seconds;
      backward += m.backward_seconds;
      optimizer += m.optimizer_seconds;
      data += m.data_seconds;
      communication += m.communication_seconds;
      pipeline_wait += m.pipeline_wait_seconds;
      tokens_per_s += m.tokens_per_s / bench.steps;
      mfu += m.mfu / bench.steps;
      flops += m.model_flops_per_s / bench.steps;
      steps.push_back(m.loss);
    }
    // Every rank's split (shares of its step time): the stages of a pipeline differ.
    const std::vector<double> local{seconds, communication - pipeline_wait, pipeline_wait, data};
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
    const auto& layout = parallel.layout();
    const int64_t micro_batches = options.accumulation_steps(layout.dp);
    if (!parallel.is_main()) {
      fs::remove_all(scratch);
      return Json();
    }
    report = {{"benchmark", "train"},
              {"recipe", recipe.source()},
              {"device", device.str()},
              {"world_size", parallel.world_size()},
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
              {"seconds_per_step", seconds / bench.steps},
              {"tokens_per_s", tokens_per_s},
              // forward + backward alone: what an eager framework's training step without the optimizer does
              {"forward_backward_tokens_per_s",
               static_cast<double>(options.global_batch_size * options.seq_len * bench.steps) / (forward + backward)},
              {"model_gflops", flops / 1e9},
              {"gemm_bf16_gflops", gemm_flops / 1e9},
              {"mfu", mfu},
              // Rank 0's shares of its step time. communication: blocked on ranks of its own stage (expert
              // all-to-all, gradient sync, ZeRO-1, reductions); pipeline_wait: blocked on another stage
              // (the bubble plus activation transfers); compute: the rest but data loading.
              {"time_split", {{"forward", forward / seconds}, {"backward", backward / seconds},
                              {"optimizer", optimizer / seconds}, {"data", data / seconds}}},
              {"time_split_per_rank", per_rank},
              // The schedule's idle share of a stage when every pass takes the same time: (pp-1)/(M x V + pp-1).
              {"ideal_bubble_share", layout.pp == 1 ? 0.0
                                                    : static_cast<double>(layout.pp - 1) /
                                                          static_cast<double>(micro_batches * layout.virtual_stages + layout.pp - 1)},
              {"losses", steps}};
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(scratch, ignored);
    throw;
  }
  fs::remove_all(scratch);
  return report;
}

}  // namespace k2f::train
