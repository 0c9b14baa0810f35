#include "train/train_options.h"

#include "base/device.h"
#include "base/error.h"
#include "model/kimi_model.h"
#include "parallel/pipeline_schedule.h"

namespace k2f::train {

int64_t TrainOptions::accumulation_steps(int64_t dp_size) const {
  return global_batch_size / (dp_size * micro_batch_size);
}

std::string TrainOptions::group_backend() const {
  if (backend != "auto") return backend;
  return device.rfind("cuda", 0) == 0 ? "nccl" : "gloo";
}

parallel::ParallelLayout TrainOptions::resolved_layout(int64_t world_size) const {
  auto resolved = layout;
  if (resolved.dp == 0 && resolved.pp >= 1 && world_size % resolved.pp == 0) resolved.dp = world_size / resolved.pp;
  return resolved;
}

namespace {
void validate_layout(const TrainOptions& o, int64_t world_size) {
  const auto& l = o.layout;
  check(l.dp >= 0, "parallel.dp (", l.dp, ") must be >= 0 (0: the number of ranks / parallel.pp)");
  check(l.dp != 0 || world_size % l.pp == 0, "parallel.pp (", l.pp, ") must divide the number of ranks (", world_size,
        ")");
  check(o.collective_timeout_s > 0, "parallel.timeout_s (", o.collective_timeout_s, ") must be > 0");
  o.resolved_layout(world_size).validate(world_size, o.model, "parallel");
}

// NCCL takes GPU tensors only. Its point-to-point operations between two ranks run in order on one
// stream, so a stage sending activations while its neighbour sends gradients back waits forever
// unless the pairs are batched (Megatron's send-forward-receive-backward); the pipeline executor
// does not batch them yet, so pipelines over NCCL are refused and Gloo carries them instead.
void validate_backend(const TrainOptions& o, const c10::Device& compute_device, int64_t world_size) {
  check(o.backend == "auto" || o.backend == "gloo" || o.backend == "nccl", "parallel.backend (\"", o.backend,
        "\") must be one of auto, gloo, nccl");
  const int64_t pp = o.resolved_layout(world_size).pp;
  check(world_size == 1 || pp == 1 || o.group_backend() != "nccl", "parallel.pp (", pp, ") over NCCL (parallel.backend \"",
        o.backend, "\", train.device \"", o.device, "\"): the pipeline's sends and receives are not batched for NCCL ",
        "yet and could wait on each other; set parallel.backend = \"gloo\" (activations then pass through host ",
        "memory) or parallel.pp = 1");
  check(o.backend != "nccl" || compute_device.is_cuda(), "parallel.backend \"nccl\" needs train.device \"cuda\" (it is \"",
        o.device, "\"): NCCL moves GPU tensors only");
}
}  // namespace

void TrainOptions::validate(int64_t world_size) const {
  validate_layout(*this, world_size);
  const int64_t dp_size = resolved_layout(world_size).dp;
  validate_backend(*this, parse_device(device, "train.device"), world_size);
  check(steps > 0, "train.steps (", steps, ") must be positive");
  check(max_bad_steps >= 1, "train.max_bad_steps (", max_bad_steps, ") must be >= 1");
  check(debug_nan_at_step >= 0 && debug_nan_steps >= 1, "debug.nan_at_step (", debug_nan_at_step,
        ") must be >= 0 and debug.nan_steps (", debug_nan_steps, ") >= 1");
  check(debug_fail_at_step >= 0 && debug_fail_rank >= 0, "debug.fail_at_step (", debug_fail_at_step,
        ") and debug.fail_rank (", debug_fail_rank, ") must be >= 0");
  check(seq_len > 0, "train.seq_len (", seq_len, ") must be positive");
  check(seq_len <= model.max_position_embeddings, "train.seq_len (", seq_len, ") must be <= model.max_position_embeddings (",
        model.max_position_embeddings, ")");
  check(micro_batch_size > 0, "train.micro_batch_size (", micro_batch_size, ") must be positive");
  check(global_batch_size > 0 && global_batch_size % (dp_size * micro_batch_size) == 0, "train.global_batch_size (",
        global_batch_size, ") must be a positive multiple of train.micro_batch_size (", micro_batch_size,
        ") x data-parallel size (", dp_size, ")");
  parallel::check_micro_batches(resolved_layout(world_size), accumulation_steps(dp_size));
  check(grad_clip >= 0, "train.grad_clip (", grad_clip, ") must be >= 0");
  check(lr > 0, "optim.lr (", lr, ") must be positive");
  optimizer.validate();
  schedule.validate(lr, steps);
  check(checkpoint_interval >= 0, "checkpoint.interval (", checkpoint_interval, ") must be >= 0");
  check(checkpoint_keep >= 1, "checkpoint.keep (", checkpoint_keep, ") must be >= 1");
  check(!data_paths.empty(), "data.paths is empty: name at least one HDF5 token store (k2forge data build)");
  check(data_weights.empty() || data_weights.size() == data_paths.size(), "data.weights has ", data_weights.size(),
        " entries but data.paths has ", data_paths.size());
  for (double w : data_weights) check(w > 0, "data.weights (", w, ") must all be positive");
  check(prefetch >= 0, "data.prefetch (", prefetch, ") must be >= 0");
  check(bias_update_rate >= 0, "balance.bias_update_rate (", bias_update_rate, ") must be >= 0");
  check(aux_loss_alpha >= 0, "balance.aux_loss_alpha (", aux_loss_alpha, ") must be >= 0");
  check(!(recompute && aux_loss_alpha > 0), "train.recompute (true) with balance.aux_loss_alpha (", aux_loss_alpha,
        ") > 0: the auxiliary loss needs the routing of the recorded forward; turn one of them off");
  check(peak_flops >= 0, "log.peak_tflops (", peak_flops / 1e12, ") must be >= 0");
  check(lora.rank >= 0, "lora.rank (", lora.rank, ") must be >= 0 (0: no adapters)");
  check(lora_optimizer == "adamw" || lora_optimizer == "muon", "lora.optimizer (\"", lora_optimizer,
        "\") must be \"adamw\" or \"muon\"");
  if (lora_enabled()) {
    lora.validate();
    check(!init_from.empty(), "lora.rank (", lora.rank, "): LoRA adapts a base model; set train.init_from to it "
          "(an HF directory or a training checkpoint)");
    check(!qat, "quant.qat with lora.rank (", lora.rank, "): the base is frozen, so QAT has nothing to train; "
          "lora.quantized_merge trains the adapters against the merged INT4 weights instead");
  }
  check(qat_options.quant.group_size > 0, "quant.group_size (", qat_options.quant.group_size, ") must be positive");
  if (qat) {
    for (const auto& [name, width] : {std::pair<const char*, int64_t>{"model.hidden_size", model.hidden_size},
                                      {"model.moe_intermediate_size", model.moe_intermediate_size}}) {
      check(width % qat_options.quant.group_size == 0, "quant.group_size (", qat_options.quant.group_size,
            ") must divide ", name, " (", width, "), the in_features of the quantised expert projections");
    }
  }
}

TrainOptions TrainOptions::from_recipe(const Recipe& r) {
  TrainOptions o;
  o.model = model_config_from_recipe(r);
  o.run_dir = r.get_string("train.run_dir");
  o.seed = static_cast<uint64_t>(r.get_int("train.seed"));
  o.dtype = model::parse_compute_dtype(r.get_string("train.dtype"), "train.dtype");
  o.device = r.get_string("train.device");
  o.steps = r.get_int("train.steps");
  o.seq_len = r.get_int("train.seq_len");
  o.global_batch_size = r.get_int("train.global_batch_size");
  o.micro_batch_size = r.get_int("train.micro_batch_size");
  o.recompute = r.get_bool("train.recompute");
  o.grad_clip = r.get_float("train.grad_clip");
  o.init_from = r.get_string("train.init_from");
  o.lr = r.get_float("optim.lr");
  o.optimizer.name = r.get_string("optim.name");
  o.optimizer.weight_decay = r.get_float("optim.weight_decay");
  o.optimizer.qk_clip_tau = r.get_float("optim.qk_clip_tau");
  o.optimizer.momentum = r.get_float("optim.momentum");
  o.optimizer.nesterov = r.get_bool("optim.nesterov");
  o.optimizer.muon_update_scale = r.get_float("optim.muon_update_scale");
  o.optimizer.newton_schulz_dtype =
      model::parse_compute_dtype(r.get_string("optim.newton_schulz_dtype"), "optim.newton_schulz_dtype");
  o.optimizer.beta1 = r.get_float("optim.beta1");
  o.optimizer.beta2 = r.get_float("optim.beta2");
  o.optimizer.eps = r.get_float("optim.eps");
  o.optimizer.adamw_pattern = r.get_string("optim.adamw_pattern");
  o.schedule.name = r.get_string("schedule.name");
  o.schedule.warmup_steps = r.get_int("schedule.warmup_steps");
  o.schedule.decay_steps = r.get_int("schedule.decay_steps");
  o.schedule.decay_shape = r.get_string("schedule.decay_shape");
  o.schedule.min_lr = r.get_float("schedule.min_lr");
  o.checkpoint_interval = r.get_int("checkpoint.interval");
  o.checkpoint_keep = r.get_int("checkpoint.keep");
  o.data_paths = r.get_strings("data.paths");
  o.data_weights = r.get_floats("data.weights");
  o.data_tokenizer = r.get_string("data.tokenizer");
  o.mask_document_boundaries = r.get_bool("data.mask_document_boundaries");
  o.prefetch = r.get_int("data.prefetch");
  o.bias_update_rate = r.get_float("balance.bias_update_rate");
  o.aux_loss_alpha = r.get_float("balance.aux_loss_alpha");
  o.tensorboard = r.get_bool("log.tensorboard");
  o.peak_flops = r.get_float("log.peak_tflops") * 1e12;
  o.qat = r.get_bool("quant.qat");
  o.qat_options.quant.group_size = r.get_int("quant.group_size");
  try {
    o.qat_options.quant.grid = quant::parse_grid(r.get_string("quant.grid"));
  } catch (const Error& e) {
    fail("quant.grid: ", e.what());
  }
  o.qat_options.targets.targets = r.get_strings("quant.targets");
  o.qat_options.targets.ignore = r.get_strings("quant.ignore");
  o.lora.rank = r.get_int("lora.rank");
  o.lora.alpha = r.get_float("lora.alpha");
  o.lora.dropout = r.get_float("lora.dropout");
  o.lora.rslora = r.get_bool("lora.rslora");
  o.lora.quantized_merge = r.get_bool("lora.quantized_merge");
  o.lora.modules.targets = r.get_strings("lora.targets");
  o.lora.modules.ignore = r.get_strings("lora.ignore");
  o.lora.seed = o.seed;
  o.lora_optimizer = r.get_string("lora.optimizer");
  if (o.lora_enabled()) o.optimizer.name = o.lora_optimizer == "muon" ? "muonclip" : "adamw";
  o.layout.pp = r.get_int("parallel.pp");
  o.layout.dp = r.get_int("parallel.dp");
  o.layout.ep = r.get_int("parallel.ep");
  o.layout.virtual_stages = r.get_int("parallel.virtual_stages");
  o.layout.schedule = r.get_string("parallel.schedule");
  o.layout.zero1 = r.get_bool("parallel.zero1");
  o.collective_timeout_s = r.get_float("parallel.timeout_s");
  o.backend = r.get_string("parallel.backend");
  const std::string router_dtype = r.get_string("train.router_dtype");
  check(router_dtype == "fp32" || router_dtype == "fp64", "train.router_dtype (\"", router_dtype,
        "\") must be \"fp32\" or \"fp64\"");
  o.router_fp64 = router_dtype == "fp64";
  o.max_bad_steps = r.get_int("train.max_bad_steps");
  o.debug_nan_at_step = r.get_int("debug.nan_at_step");
  o.debug_nan_steps = r.get_int("debug.nan_steps");
  o.debug_fail_at_step = r.get_int("debug.fail_at_step");
  o.debug_fail_rank = r.get_int("debug.fail_rank");
  o.recipe_toml = r.to_toml();
  return o;
}

}  // namespace k2f::train
