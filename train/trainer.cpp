#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <limits>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "base/device.h"
#include "base/error.h"
#include "base/log.h"
#include "base/stopwatch.h"
#include "data/tokenizer.h"
#include "model/hf_checkpoint.h"
#include "model/param_count.h"
#include "quant/quantized_hf_source.h"
#include "train/bench_model.h"
#include "train/losses.h"
#include "train/model_loading.h"
#include "train/optim/qk_clip.h"
#include "train/recompute.h"
#include "train/stop_signals.h"

namespace k2f::train {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;


data::LoaderOptions loader_options(const TrainOptions& o, const ParallelRuntime& parallel) {
  data::LoaderOptions l;
  l.dp_rank = parallel.coord().dp_rank;
  l.dp_size = parallel.layout().dp;
  l.paths = o.data_paths;
  l.weights = o.data_weights;
  l.seq_len = o.seq_len;
  l.global_batch_size = o.global_batch_size;
  l.seed = o.seed;
  l.mask_document_boundaries = o.mask_document_boundaries;
  l.prefetch_batches = o.prefetch;
  l.expected_vocab_size = o.model.vocab_size;
  if (!o.data_tokenizer.empty()) l.expected_tokenizer_hash = data::Tokenizer::load(o.data_tokenizer).hash();
  return l;
}

// Scales every gradient so the global L2 norm (over all ranks) is at most `max_norm`; returns the
// norm before.
double clip_gradients(const NamedTensorList& params, double max_norm, const ParallelRuntime& parallel) {
  torch::NoGradGuard no_grad;
  const double norm = parallel.global_grad_norm(params);
  if (max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (const auto& [name, p] : params)
      if (p.grad().defined()) p.grad().mul_(scale);
  }
  return norm;
}

}  // namespace

Trainer::Trainer(TrainOptions options, TrainerRunOptions run_options,
                 std::shared_ptr<parallel::DistributedContext> context)
    : options_(std::move(options)), run_options_(run_options) {
  const int world_size = context ? context->world_size() : 1;
  // Agreed on by every rank before any other collective: an invalid layout stops all of them.
  const auto validate = [&] { options_.validate(world_size); };
  if (context) {
    context->check_on_all_ranks(validate);
  } else {
    validate();
  }
  parallel_ = std::make_unique<ParallelRuntime>(std::move(context), options_.resolved_layout(world_size));
  device_ = device_for_local_rank(parse_device(options_.device, "train.device"), parallel_->local_rank());
  parallel_->create_groups(options_.group_backend());
  // Reads files and allocates without communicating: a missing store or a damaged checkpoint on
  // one rank stops every rank with its message instead of leaving them waiting.
  parallel_->on_all_ranks([this] { set_up(); });
  agree_on_resume_step();
  parallel_->on_all_ranks([this] { resume_or_start(); });
  log_optimizer_state_bytes();
  peak_flops_ = options_.peak_flops > 0 ? options_.peak_flops : measure_bf16_gemm_flops(device_);
  if (parallel_->is_main()) {
    fs::create_directories(options_.run_dir);
    write_text_file_atomic((fs::path(options_.run_dir) / "recipe.resolved.toml").string(), options_.recipe_toml);
  }
}

void Trainer::set_up() {
  build_model();
  checkpoints_ = std::make_unique<CheckpointManager>(options_.run_dir, options_.checkpoint_keep);
  loader_ = std::make_unique<data::TokenLoader>(loader_options(options_, *parallel_));
  loads_ = std::make_unique<ExpertLoadTracker>(model_->model);
  executor_ = std::make_unique<PipelineExecutor>(model_, parallel_->layout(), parallel_->stage(), parallel_->groups().pp,
                                                 device_, *loads_);
  flops_per_token_ = 3.0 * model::forward_flops_per_token(options_.model, options_.seq_len);

  if (lora_) {
    named_parameters_ = lora_->named_parameters();
  } else {
    for (const auto& item : model_->named_parameters()) named_parameters_.emplace_back(item.key(), item.value());
  }
  parallel_->shard_optimizer_state(named_parameters_, options_.optimizer);
  const auto share = parallel_->optimized_here(named_parameters_);
  optimizer_ = std::make_unique<Optimizer>(share.parameters, options_.optimizer, share.rows);

  if (run_options_.fresh) {
    check(checkpoints_->steps().empty(), options_.run_dir,
          ": holds checkpoints already; --fresh never overwrites them (choose a new train.run_dir)");
  }
  resume_from_ = checkpoints_->load_latest(checkpoint_reads());
}

// What this rank reads of a checkpoint: its own model part and optimizer state (and the step and
// RNG), so that only the files holding them are checked and mapped.
std::vector<std::string> Trainer::checkpoint_reads() const {
  std::vector<std::string> names{kCpuRngStateName};
  for (const auto& [name, tensor] : checkpointed_model_state()) names.push_back(name);
  for (const auto& [name, tensor] : optimizer_->state_tensors()) names.push_back(name);
  return names;
}

// Every rank resumes from the same step: the newest that is intact for all of them (a file only
// some ranks read may be damaged).
void Trainer::agree_on_resume_step() {
  const int64_t here = resume_from_ ? resume_from_->step : -1;
  int64_t lowest = here, highest = here;
  for (const auto& text : parallel_->gather_over_world(std::to_string(here))) {
    lowest = std::min<int64_t>(lowest, std::stoll(text));
    highest = std::max<int64_t>(highest, std::stoll(text));
  }
  parallel_->on_all_ranks([&] {
    check(lowest >= 0 || highest < 0, options_.run_dir, ": some ranks find no intact checkpoint and others step ", highest,
          " (do all ranks see the same train.run_dir?)");
    if (here != lowest) {
      log::warn("rank ", parallel_->rank(), " resumes from ", CheckpointManager::step_dir_name(lowest),
                ", the newest checkpoint intact for every rank");
      resume_from_ = checkpoints_->load_step(lowest, checkpoint_reads());
    }
  });
}

void Trainer::resume_or_start() {
  if (resume_from_) {
    resume(*resume_from_);
    resume_from_.reset();  // unmaps its files
    return;
  }
  torch::manual_seed(static_cast<uint64_t>(options_.seed));  // a fresh run's random numbers (dropout) follow its seed
  if (!lora_) initialise_weights();
}

// This rank's model: its slice of the routed experts (all of them in one process), reached
// through the expert-parallel dispatcher when the experts are split.
void Trainer::build_model() {
  if (options_.lora_enabled()) {
    model_ = frozen_base_model();
  } else {
    model_ = model::KimiForCausalLM(options_.model, parallel_->expert_slice(options_.model),
                                    parallel_->model_part(options_.model));
  }
  model_->compute_dtype = options_.dtype;
  if (options_.recompute) model_->model->layer_runner = recomputing_layer_runner();
  model::set_router_fp64(model_, options_.router_fp64);
  if (options_.aux_loss_alpha > 0)
    for (auto& layer : model_->model->decoder_layers)
      if (layer->moe) layer->moe->keep_routing = true;
  if (options_.qat) {
    const auto quantised = quant::apply_qat(*model_, options_.qat_options);
    log::info("INT4 QAT (group ", options_.qat_options.quant.group_size, ", grid ",
              quant::grid_name(options_.qat_options.quant.grid), ") on ", quantised.size(), " linears");
  }
  if (!device_.is_cpu()) {
    model_->to(device_);
    log::info("model on ", device_.str());
  }
  parallel_->install_expert_dispatcher(model_);
  if (options_.lora_enabled()) {
    lora_ = quant::apply_lora(*model_, options_.lora);
    log::info("LoRA rank ", options_.lora.rank, " (scale ", options_.lora.scale(), ", ", options_.lora_optimizer, ") on ",
              lora_->adapters.size(), " linears; the base is frozen (no QK-Clip, no router-bias update)");
  }
}

// A LoRA run's base, on every start and resume, loaded as `k2forge score` loads it: an INT4
// directory's linears stay packed (W4A16, no dequantised copy), under bf16 compute its bf16 weights
// stay bf16, a QAT checkpoint keeps its fake quantisation. Each rank builds and reads only its own
// routed experts and pipeline stage. Its files' checksums are what checkpoints record and resume checks.
model::KimiForCausalLM Trainer::frozen_base_model() {
  const std::string& dir = options_.init_from;
  if (is_training_checkpoint(dir)) {
    check(!read_json_file((fs::path(dir) / "meta.json").string()).contains("lora"), "train.init_from (\"", dir,
          "\") is itself a LoRA checkpoint: export it merged (k2forge export --format hf-bf16 or hf-int4) and adapt that");
  } else {
    check(fs::exists(fs::path(dir) / "config.json"), "train.init_from (\"", dir,
          "\"): expected an HF directory (config.json) or a checkpoint (meta.json)");
  }
  check_same_architecture(stored_model_config(dir), options_.model, "train.init_from (\"" + dir + "\")");
  lora_base_ = fs::absolute(dir).lexically_normal().string();
  lora_base_files_ = directory_checksums(lora_base_);
  LoadOptions load;
  load.keep_bf16 = options_.dtype == torch::kBFloat16;
  load.experts = parallel_->expert_slice(options_.model);  // each rank reads only what it holds
  load.part = parallel_->model_part(options_.model);
  return load_model(dir, load);
}

Trainer::~Trainer() = default;

// Every rank's optimizer memory on rank 0's console: ZeRO-1 divides it by the replication groups.
void Trainer::log_optimizer_state_bytes() const {
  std::vector<double> bytes(static_cast<size_t>(parallel_->world_size()), 0.0);
  bytes[static_cast<size_t>(parallel_->rank())] = static_cast<double>(optimizer_->state_bytes());
  std::string per_rank;
  for (const double b : parallel_->sum_over_world(bytes)) per_rank += (per_rank.empty() ? "" : ", ") + std::to_string(static_cast<int64_t>(b));
  log::info("optimizer state bytes per rank: [", per_rank, "]", parallel_->layout().zero1 ? " (ZeRO-1)" : "");
}

void Trainer::initialise_weights() {
  const std::string& source = options_.init_from;
  if (source.empty()) {
    model::init_weights(model_, options_.seed);
    log::info("initialised weights from seed ", options_.seed);
  } else if (fs::exists(fs::path(source) / "config.json")) {
    quant::QuantizedHfSource directory(source);  // bf16, FP8-block or INT4: dequantised into masters
    model::load_weights(*model_, directory);
  } else if (fs::exists(fs::path(source) / "meta.json")) {
    load_named_state(*open_checkpoint_model(source).tensors, model::named_state(*model_));
    log::info("initialised weights from checkpoint ", source);
  } else {
    fail("train.init_from (\"", source, "\"): expected an HF directory (config.json) or a checkpoint (meta.json)");
  }
}

void Trainer::resume(LoadedCheckpoint& loaded) {
  if (lora_) {
    const std::string meta_path = (fs::path(loaded.dir) / "meta.json").string();
    const auto record = lora_record_from_meta(loaded.meta, meta_path);
    check(record.has_value(), meta_path, ": not a LoRA checkpoint, but lora.rank is ", options_.lora.rank,
          " (choose a new train.run_dir)");
    check_adapted_modules(record->modules, meta_path);
    check_directory_checksums(lora_base_, record->base_files, meta_path);
  }
  load_named_state(*loaded.model, checkpointed_model_state());
  auto& state = *loaded.optimizer;
  optimizer_->load_state([&](const std::string& name, RowRange rows) {
    check(state.contains(name), state.description(), ": optimizer state \"", name,
          "\" is missing (a checkpoint of another optimizer or model?)");
    return rows.whole() ? state.load(name) : state.load_rows(name, rows.first, rows.count);  // only this rank's rows
  });
  auto generator = at::detail::getDefaultCPUGenerator();  // a handle sharing the default generator
  generator.set_state(state.load(kCpuRngStateName));
  loader_->restore(loaded.meta.at("sampler"));
  completed_steps_ = loaded.step;
  tokens_seen_ = loaded.meta.at("tokens_seen").get<int64_t>();
  skipped_steps_ = loaded.meta.value("skipped_steps", int64_t{0});
  log::info("resumed from ", loaded.dir, " (step ", completed_steps_, ")");
}

NamedTensorList Trainer::checkpointed_model_state() const {
  return lora_ ? lora_->named_parameters() : model::named_state(*model_);
}

// The whole model's adapted modules, from the adapter tensors every rank's part of a checkpoint
// wrote (in rank order, each part in module order).
LoraRecord Trainer::lora_record(const std::vector<Json>& parts) const {
  LoraRecord record{options_.lora, {}, lora_base_, lora_base_files_};
  const std::string prefix = "base_model.model.", suffix = ".lora_A.weight";
  for (const auto& part : parts) {
    for (const auto& entry : part.at("model_order")) {
      const auto name = entry.get<std::string>();
      if (name.size() > prefix.size() + suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
        record.modules.push_back(name.substr(prefix.size(), name.size() - prefix.size() - suffix.size()));
    }
  }
  return record;
}

// A checkpoint's adapted modules against this rank's: every module of this rank's part that the
// checkpoint adapts is adapted here, and nothing else (a checkpoint of any layout resumes under any other).
void Trainer::check_adapted_modules(const std::vector<std::string>& recorded, const std::string& meta_path) const {
  std::set<std::string> here, held;
  for (const auto& [path, adapter] : lora_->adapters) here.insert(path);
  for (const auto& item : model_->named_modules("", false)) held.insert(item.key());
  for (const auto& path : here)
    check(std::find(recorded.begin(), recorded.end(), path) != recorded.end(), meta_path, ": its adapters are on other modules than "
          "lora.targets / lora.ignore select now (", path, " is selected, the checkpoint does not adapt it)");
  for (const auto& path : recorded)
    check(!held.count(path) || here.count(path), meta_path, ": its adapters are on other modules than lora.targets / "
          "lora.ignore select now (the checkpoint adapts ", path, ", which they do not select)");
}

void Trainer::zero_gradients() {
  model_->zero_grad();
  for (auto& [name, p] : named_parameters_)
    if (p.grad().defined()) p.mutable_grad().reset();
}

// Each rank writes only what it owns (parallel_->written_here: one replica of each replicated
// tensor, every ZeRO-1 shard by its holder) into the step's directory; rank 0 commits the step
// once every part is there. Only the parts' indexes (text) cross ranks. Any layout resumes it.
void Trainer::save_checkpoint() {
  const auto model_state = checkpointed_model_state();
  ShardTensors model_part, optimizer_part;
  const auto writes = parallel_->written_here(model_state);
  for (size_t i = 0; i < model_state.size(); ++i)
    if (writes[i]) model_part.push_back({model_state[i].first, model_state[i].second});
  std::map<std::string, const OptimizedParameter*> parameters;
  for (const auto& p : optimizer_->parameters()) parameters[p.name] = &p;
  NamedTensorList optimizer_state;
  for (auto& [name, tensor] : optimizer_->state_tensors())
    if (name != "optimizer.step") optimizer_state.emplace_back(name, tensor);
  // Without ZeRO-1 the state is replicated like its parameter; with it, each rank holds its own shards.
  const auto state_writes = parallel_->layout().zero1 ? std::vector<bool>(optimizer_state.size(), true)
                                                      : parallel_->written_here(optimizer_state);
  for (size_t i = 0; i < optimizer_state.size(); ++i) {
    if (!state_writes[i]) continue;
    const auto& [name, tensor] = optimizer_state[i];
    ShardTensor piece{name, tensor};
    const auto& p = *parameters.at(name.substr(0, name.rfind('.')));
    if (!p.rows.whole()) {
      piece.first = p.rows.first;
      piece.total_rows = p.param.size(0);
    }
    optimizer_part.push_back(std::move(piece));
  }
  if (parallel_->is_main()) {
    optimizer_part.push_back({"optimizer.step", torch::tensor(optimizer_->steps_taken(), torch::kInt64)});
    optimizer_part.push_back({kCpuRngStateName, at::detail::getDefaultCPUGenerator().get_state()});
  }
  const int64_t step = completed_steps_;
  // Each phase ends with every rank learning every rank's outcome ("" or its error).
  const auto agree = [&](const std::string& error) {
    for (const auto& text : parallel_->gather_over_world(error)) {
      if (text.empty()) continue;
      if (parallel_->is_main()) checkpoints_->abandon_save(checkpoints_->temporary_dir(step));
      fail(checkpoints_->save_failure(step, text));
    }
  };
  const auto attempt = [&](const std::function<void()>& body) {
    try {
      body();
      return std::string();
    } catch (const std::exception& e) {
      return "rank " + std::to_string(parallel_->rank()) + ": " + e.what();
    }
  };
  agree(attempt([&] { if (parallel_->is_main()) checkpoints_->begin_save(step); }));
  Json part;
  const std::string written = attempt([&] {
    part = checkpoints_->write_part(checkpoints_->temporary_dir(step), parallel_->rank(), model_part, optimizer_part);
  });
  const auto parts = parallel_->gather_over_world(written.empty() ? part.dump() : "");
  agree(written);
  std::string dir;
  agree(attempt([&] {
    if (!parallel_->is_main()) return;
    std::vector<Json> indexes;
    for (const auto& text : parts) indexes.push_back(Json::parse(text));
    dir = checkpoints_->commit_save(step, checkpoints_->temporary_dir(step), indexes, checkpoint_meta(indexes));
  }));
  if (parallel_->is_main()) log::info("checkpoint ", dir);
}

Json Trainer::checkpoint_meta(const std::vector<Json>& parts) const {
  const auto& layout = parallel_->layout();
  Json meta = {{"format_version", 2},
               {"tokens_seen", tokens_seen_},
               {"skipped_steps", skipped_steps_},
               {"sampler", loader_->state()},
               {"model_config", options_.model.to_hf_json()},
               {"layout", {{"world_size", parallel_->world_size()}, {"pp", layout.pp}, {"dp", layout.dp}, {"ep", layout.ep}}},
               {"recipe", options_.recipe_toml}};
  if (options_.qat) meta["quantization"] = quantization_meta(options_.qat_options);
  if (lora_) meta["lora"] = lora_meta(lora_record(parts));
  return meta;
}

StepMetrics Trainer::train_step(int64_t step) {
  const auto step_start = Clock::now();
  const double blocked_at_start = parallel::blocked_seconds();
  StepMetrics m;
  m.step = step + 1;
  m.lr = learning_rate(options_.schedule, options_.lr, step, options_.steps);

  check(options_.debug_fail_at_step != m.step || options_.debug_fail_rank != parallel_->rank(),
        "debug.fail_at_step: injected failure at step ", m.step, " on rank ", parallel_->rank());
  auto data_start = Clock::now();
  const int64_t accumulation = options_.accumulation_steps(parallel_->layout().dp);
  std::vector<data::TokenBatch> micro_batches;
  double target_tokens = 0;
  for (int64_t i = 0; i < accumulation; ++i) {
    micro_batches.push_back(loader_->next(options_.micro_batch_size));
    target_tokens += micro_batches.back().loss_mask_BT.narrow(1, 1, options_.seq_len).sum().item<double>();
  }
  m.data_seconds = seconds_since(data_start);
  target_tokens = parallel_->sum_over_dp({target_tokens})[0];  // the loss is a mean over the GLOBAL batch
  check(target_tokens > 0, "step ", m.step, ": the batch has no target tokens (every loss_mask entry is 0)");

  inject_nan_ = options_.debug_nan_at_step > 0 && m.step >= options_.debug_nan_at_step &&
                m.step < options_.debug_nan_at_step + options_.debug_nan_steps;
  begin_qk_recording(model_->model);
  loads_->reset();
  zero_gradients();
  StepLoss step_loss;
  step_loss.seq_len = options_.seq_len;
  step_loss.inverse_tokens = 1.0 / target_tokens;
  step_loss.aux_scale = options_.aux_loss_alpha / static_cast<double>(options_.global_batch_size);
  step_loss.inject_nan = inject_nan_;
  const auto passes = executor_->run(micro_batches, step_loss);
  m.forward_seconds = passes.forward_seconds;
  m.backward_seconds = passes.backward_seconds;
  m.pipeline_wait_seconds = passes.receive_seconds;
  // The loss lives on the last stage of each dp index, balance losses on every stage.
  const auto sums = parallel_->sum_over_world({passes.nll_sum, passes.aux_loss});
  m.loss = sums[0] / target_tokens;
  m.aux_loss = sums[1];

  const auto optimizer_start = Clock::now();
  parallel_->sync_gradients(named_parameters_);
  m.grad_sync_seconds = seconds_since(optimizer_start);
  m.grad_norm = clip_gradients(named_parameters_, options_.grad_clip, *parallel_);
  // Every rank sees the same global loss and norm, so every rank makes the same decision.
  if (!std::isfinite(m.loss) || !std::isfinite(m.grad_norm)) {
    skip_bad_step(m);
  } else {
    consecutive_bad_steps_ = 0;
    optimizer_->step(m.lr);
    parallel_->share_updated_parameters(named_parameters_);
    for (auto& layer : model_->model->decoder_layers)
      if (layer->self_attn->max_logits_H.defined()) parallel_->max_over_dp(layer->self_attn->max_logits_H);
    // A LoRA base is frozen: QK maxima are reported, nothing of the base moves.
    const auto qk = apply_qk_clip(model_->model, lora_ ? 0.0 : options_.optimizer.qk_clip_tau);
    parallel_->sum_over_dp(loads_->loads());  // every replica moves its router biases by the global loads
    update_router_biases(model_->model, loads_->loads(), lora_ ? 0.0 : options_.bias_update_rate);
    m.max_qk_logit = parallel_->max_over_stages(qk.max_logit);
    m.qk_heads_clipped = static_cast<int64_t>(parallel_->sum_over_stages({static_cast<double>(qk.heads_clipped)})[0]);
  }
  m.optimizer_seconds = seconds_since(optimizer_start);
  m.skipped_steps = skipped_steps_;
  m.expert_imbalance = whole_model_imbalance();
  const int64_t step_tokens = options_.global_batch_size * options_.seq_len;
  tokens_seen_ += step_tokens;
  m.tokens_seen = tokens_seen_;
  m.seconds = seconds_since(step_start);
  m.communication_seconds = parallel::blocked_seconds() - blocked_at_start;
  m.tokens_per_s = static_cast<double>(step_tokens) / m.seconds;
  m.model_flops_per_s = m.tokens_per_s * flops_per_token_;
  m.mfu = m.model_flops_per_s / peak_flops_;
  m.rss_bytes = resident_bytes();
  m.peak_rss_bytes = peak_resident_bytes();
  if (options_.qat) m.quant_error = whole_model_quant_error();
  completed_steps_ = step + 1;
  return m;
}

void Trainer::skip_bad_step(StepMetrics& m) {
  zero_gradients();
  m.skipped = true;
  ++skipped_steps_;
  if (consecutive_bad_steps_++ == 0) first_bad_step_ = m.step;
  log::warn("step ", m.step, ": non-finite ", std::isfinite(m.loss) ? "gradient norm" : "loss",
            ", step skipped (weights, optimizer state and router biases unchanged; ", consecutive_bad_steps_, " in a row, ",
            skipped_steps_, " in this run)");
  const auto latest = checkpoints_->steps();
  check(consecutive_bad_steps_ < options_.max_bad_steps, "steps ", first_bad_step_, " to ", m.step, ": ",
        consecutive_bad_steps_, " consecutive steps with a non-finite loss or gradient (train.max_bad_steps = ",
        options_.max_bad_steps, "), the first at step ", first_bad_step_, "; stopping. ",
        latest.empty() ? std::string("No checkpoint was written yet")
                       : "The last good checkpoint is " + (fs::path(options_.run_dir) /
                                                           CheckpointManager::step_dir_name(latest.back())).string());
}

// A stop request on one rank (a signal sent to that process only) stops every rank after the same
// step: the ranks agree on it with one small all-reduce per step.
bool Trainer::stop_requested_on_any_rank() const {
  const double here = StopSignals::requested() != 0 ? 1.0 : 0.0;
  if (!parallel_->distributed()) return here > 0;
  return parallel_->sum_over_world({here})[0] > 0;
}

// Each stage knows its own layers' figures; the metrics name every layer's.
std::vector<double> Trainer::whole_model_imbalance() const {
  const auto local = loads_->imbalance();
  std::vector<std::pair<int64_t, double>> layers = local;
  if (parallel_->layout().pp > 1) {
    Json held = Json::array();
    for (const auto& [layer, value] : local) held.push_back({layer, value});
    layers.clear();
    for (const auto& text : parallel_->gather_over_stages(held.dump()))
      for (const auto& entry : Json::parse(text)) layers.emplace_back(entry[0].get<int64_t>(), entry[1].get<double>());
    std::sort(layers.begin(), layers.end());
  }
  std::vector<double> values;
  for (const auto& [layer, value] : layers) values.push_back(value);
  return values;
}

std::vector<std::pair<std::string, double>> Trainer::whole_model_quant_error() const {
  const auto local = quant::quantization_error_per_layer(*model_, options_.qat_options);
  if (parallel_->layout().pp == 1) return local;
  Json held = Json::array();
  for (const auto& [layer, error] : local) held.push_back({layer, error});
  std::vector<std::pair<std::string, double>> all;
  for (const auto& text : parallel_->gather_over_stages(held.dump()))
    for (const auto& entry : Json::parse(text)) all.emplace_back(entry[0].get<std::string>(), entry[1].get<double>());
  return all;
}

std::vector<StepMetrics> Trainer::run() {
  std::optional<MetricsLogger> logger;  // rank 0 writes metrics; every rank computes the same ones
  if (parallel_->is_main()) {
    logger.emplace(options_.run_dir, options_.steps, completed_steps_, options_.tensorboard, !run_options_.quiet_console);
  }
  std::vector<StepMetrics> history;
  const int64_t first = completed_steps_;
  const int64_t last = run_options_.stop_after_steps > 0 ? std::min(options_.steps, first + run_options_.stop_after_steps)
                                                         : options_.steps;
  if (first >= options_.steps) log::info("run already complete (step ", first, " of ", options_.steps, ")");
  std::optional<StopSignals> signals;
  if (run_options_.handle_stop_signals) {
    StopSignals::clear();
    signals.emplace();
  }
  stopped_by_signal_ = 0;
  for (int64_t step = first; step < last; ++step) {
    history.push_back(train_step(step));
    if (logger) logger->log(history.back());
    const bool stop = run_options_.handle_stop_signals && stop_requested_on_any_rank();
    const bool interval_due = options_.checkpoint_interval > 0 && completed_steps_ % options_.checkpoint_interval == 0;
    // No checkpoint inside a run of skipped (non-finite) steps: the last good one stays the newest.
    if ((interval_due || completed_steps_ == last || stop) && consecutive_bad_steps_ == 0) save_checkpoint();
    if (stop) {
      stopped_by_signal_ = StopSignals::requested() != 0 ? StopSignals::requested() : SIGTERM;
      log::warn("stopping after step ", completed_steps_, " (", signal_name(stopped_by_signal_), "), ",
                consecutive_bad_steps_ == 0 ? "checkpoint written" : "no checkpoint (inside a run of skipped steps)",
                ": rerun the same command to continue");
      break;
    }
  }
  if (logger) logger->finish();
  return history;
}

}  // namespace k2f::train
