#include "train/trainer.h"

#include <chrono>
#include <filesystem>

#include "base/error.h"
#include "base/log.h"
#include "data/tokenizer.h"
#include "model/hf_checkpoint.h"
#include "model/param_count.h"
#include "quant/quantized_hf_source.h"
#include "train/bench_model.h"
#include "train/losses.h"
#include "train/model_loading.h"
#include "train/optim/qk_clip.h"
#include "train/recompute.h"

namespace k2f::train {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

constexpr const char* kRngName = "rng.torch_cpu";

data::LoaderOptions loader_options(const TrainOptions& o) {
  data::LoaderOptions l;
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

// Scales every gradient so the global L2 norm is at most `max_norm`; returns the norm before.
double clip_gradients(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  double squared = 0;
  for (const auto& p : params)
    if (p.grad().defined()) squared += p.grad().to(torch::kFloat64).pow(2).sum().item<double>();
  const double norm = std::sqrt(squared);
  if (max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (const auto& p : params)
      if (p.grad().defined()) p.grad().mul_(scale);
  }
  return norm;
}

}  // namespace

Trainer::Trainer(TrainOptions options, TrainerRunOptions run_options)
    : options_(std::move(options)), run_options_(run_options) {
  options_.validate();
  model_ = model::KimiForCausalLM(options_.model);
  model_->compute_dtype = options_.dtype;
  if (options_.recompute) model_->model->layer_runner = recomputing_layer_runner();
  if (options_.aux_loss_alpha > 0)
    for (auto& layer : model_->model->decoder_layers)
      if (layer->moe) layer->moe->keep_routing = true;
  if (options_.qat) {
    const auto quantised = quant::apply_qat(*model_, options_.qat_options);
    log::info("INT4 QAT (group ", options_.qat_options.quant.group_size, ", grid ",
              quant::grid_name(options_.qat_options.quant.grid), ") on ", quantised.size(), " linears");
  }
  checkpoints_ = std::make_unique<CheckpointManager>(options_.run_dir, options_.checkpoint_keep);
  loader_ = std::make_unique<data::TokenLoader>(loader_options(options_));
  loads_ = std::make_unique<ExpertLoadTracker>(model_->model);
  flops_per_token_ = 3.0 * model::forward_flops_per_token(options_.model, options_.seq_len);

  std::vector<std::pair<std::string, torch::Tensor>> params;
  for (const auto& item : model_->named_parameters()) params.emplace_back(item.key(), item.value());
  optimizer_ = std::make_unique<Optimizer>(params, options_.optimizer);

  if (run_options_.fresh) {
    check(checkpoints_->steps().empty(), options_.run_dir,
          ": holds checkpoints already; --fresh never overwrites them (choose a new train.run_dir)");
  }
  if (!resume()) initialise_weights();
  peak_flops_ = options_.peak_flops > 0 ? options_.peak_flops : measure_bf16_gemm_flops();
  fs::create_directories(options_.run_dir);
  write_text_file_atomic((fs::path(options_.run_dir) / "recipe.resolved.toml").string(), options_.recipe_toml);
}

Trainer::~Trainer() = default;

void Trainer::initialise_weights() {
  const std::string& source = options_.init_from;
  if (source.empty()) {
    model::init_weights(model_, options_.seed);
    log::info("initialised weights from seed ", options_.seed);
  } else if (fs::exists(fs::path(source) / "config.json")) {
    quant::QuantizedHfSource directory(source);  // bf16, FP8-block or INT4: dequantised into masters
    model::load_weights(*model_, directory);
  } else if (fs::exists(fs::path(source) / "meta.json")) {
    model::SafetensorsFile file((fs::path(source) / checkpoint_file_name("model", 0)).string());
    load_named_state(file, model::named_state(*model_));
    log::info("initialised weights from checkpoint ", source);
  } else {
    fail("train.init_from (\"", source, "\"): expected an HF directory (config.json) or a checkpoint (meta.json)");
  }
}

bool Trainer::resume() {
  auto loaded = checkpoints_->load_latest();
  if (!loaded) return false;
  load_named_state(*loaded->model, model::named_state(*model_));
  optimizer_->load_state([&](const std::string& name) {
    check(loaded->optimizer->contains(name), loaded->optimizer->path(), ": optimizer state \"", name,
          "\" is missing (a checkpoint of another optimizer or model?)");
    return loaded->optimizer->load(name);
  });
  auto generator = at::detail::getDefaultCPUGenerator();  // a handle sharing the default generator
  generator.set_state(loaded->optimizer->load(kRngName));
  loader_->restore(loaded->meta.at("sampler"));
  completed_steps_ = loaded->step;
  tokens_seen_ = loaded->meta.at("tokens_seen").get<int64_t>();
  log::info("resumed from ", loaded->dir, " (step ", completed_steps_, ")");
  return true;
}

void Trainer::save_checkpoint() {
  auto optimizer_state = optimizer_->state_tensors();
  optimizer_state.emplace_back(kRngName, at::detail::getDefaultCPUGenerator().get_state());
  Json meta = {{"format_version", 1},
               {"tokens_seen", tokens_seen_},
               {"sampler", loader_->state()},
               {"model_config", options_.model.to_hf_json()},
               {"layout", {{"world_size", 1}, {"pp", 1}, {"dp", 1}, {"ep", 1}}},
               {"recipe", options_.recipe_toml}};
  if (options_.qat) meta["quantization"] = quantization_meta(options_.qat_options);
  const auto dir = checkpoints_->save(completed_steps_, model::named_state(*model_), optimizer_state, meta);
  log::info("checkpoint ", dir);
}

torch::Tensor Trainer::forward_backward(const data::TokenBatch& batch, double inverse_tokens, double aux_scale,
                                        double& aux_loss, double& forward_seconds, double& backward_seconds) {
  const int64_t T = options_.seq_len;
  const auto start = Clock::now();
  model::ForwardInputs inputs{batch.tokens_BT.narrow(1, 0, T), batch.positions_BT.narrow(1, 0, T),
                              batch.segment_ids_BT.defined() ? batch.segment_ids_BT.narrow(1, 0, T) : torch::Tensor()};
  const auto logits_BTV = model_->forward(inputs);
  const auto nll_sum = masked_nll_sum(logits_BTV, batch.tokens_BT.narrow(1, 1, T), batch.loss_mask_BT.narrow(1, 1, T));
  auto loss = nll_sum * inverse_tokens;
  if (aux_scale > 0) {
    for (auto& layer : model_->model->decoder_layers) {
      if (!layer->moe) continue;
      const auto aux = sequence_balance_loss_sum(layer->moe->last_routing, inputs.tokens_BT.size(0), T) * aux_scale;
      aux_loss += aux.item<double>();
      loss = loss + aux;
    }
  }
  loads_->accumulate(model_->model);
  forward_seconds += seconds_since(start);
  const auto backward_start = Clock::now();
  loss.backward();
  backward_seconds += seconds_since(backward_start);
  return nll_sum.detach();
}

StepMetrics Trainer::train_step(int64_t step) {
  const auto step_start = Clock::now();
  StepMetrics m;
  m.step = step + 1;
  m.lr = learning_rate(options_.schedule, options_.lr, step, options_.steps);

  auto data_start = Clock::now();
  const int64_t accumulation = options_.accumulation_steps();
  std::vector<data::TokenBatch> micro_batches;
  double target_tokens = 0;
  for (int64_t i = 0; i < accumulation; ++i) {
    micro_batches.push_back(loader_->next(options_.micro_batch_size));
    target_tokens += micro_batches.back().loss_mask_BT.narrow(1, 1, options_.seq_len).sum().item<double>();
  }
  m.data_seconds = seconds_since(data_start);
  check(target_tokens > 0, "step ", m.step, ": the batch has no target tokens (every loss_mask entry is 0)");

  begin_qk_recording(model_->model);
  loads_->reset();
  model_->zero_grad();
  double nll = 0;
  const double aux_scale = options_.aux_loss_alpha / static_cast<double>(options_.global_batch_size);
  for (const auto& batch : micro_batches) {
    nll += forward_backward(batch, 1.0 / target_tokens, aux_scale, m.aux_loss, m.forward_seconds, m.backward_seconds)
               .item<double>();
  }
  m.loss = nll / target_tokens;

  const auto optimizer_start = Clock::now();
  m.grad_norm = clip_gradients(model_->parameters(), options_.grad_clip);
  optimizer_->step(m.lr);
  const auto qk = apply_qk_clip(model_->model, options_.optimizer.qk_clip_tau);
  update_router_biases(model_->model, loads_->loads(), options_.bias_update_rate);
  m.optimizer_seconds = seconds_since(optimizer_start);

  m.max_qk_logit = qk.max_logit;
  m.qk_heads_clipped = qk.heads_clipped;
  m.expert_imbalance = loads_->imbalance();
  const int64_t step_tokens = options_.global_batch_size * options_.seq_len;
  tokens_seen_ += step_tokens;
  m.tokens_seen = tokens_seen_;
  m.seconds = seconds_since(step_start);
  m.tokens_per_s = static_cast<double>(step_tokens) / m.seconds;
  m.model_flops_per_s = m.tokens_per_s * flops_per_token_;
  m.mfu = m.model_flops_per_s / peak_flops_;
  m.rss_bytes = resident_bytes();
  if (options_.qat) m.quant_error = quant::quantization_error_per_layer(*model_, options_.qat_options);
  completed_steps_ = step + 1;
  return m;
}

std::vector<StepMetrics> Trainer::run() {
  MetricsLogger logger(options_.run_dir, options_.steps, completed_steps_, options_.tensorboard,
                       !run_options_.quiet_console);
  std::vector<StepMetrics> history;
  const int64_t first = completed_steps_;
  const int64_t last = run_options_.stop_after_steps > 0 ? std::min(options_.steps, first + run_options_.stop_after_steps)
                                                         : options_.steps;
  if (first >= options_.steps) log::info("run already complete (step ", first, " of ", options_.steps, ")");
  for (int64_t step = first; step < last; ++step) {
    history.push_back(train_step(step));
    logger.log(history.back());
    const bool interval_due = options_.checkpoint_interval > 0 && completed_steps_ % options_.checkpoint_interval == 0;
    if (interval_due || completed_steps_ == last) save_checkpoint();
  }
  logger.finish();
  return history;
}

}  // namespace k2f::train
