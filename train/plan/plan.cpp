#include "train/plan/plan.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "base/error.h"
#include "model/param_count.h"

namespace k2f::train::plan {
namespace {

constexpr double kGB = 1e9;

std::string gb(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.4g", bytes / kGB);
  return text;
}

std::string fixed(double value, int digits) {
  char text[48];
  std::snprintf(text, sizeof text, "%.*f", digits, value);
  return text;
}

// 4.79B parameters, 68.49 GFLOP: readable at any model size.
std::string count_text(double n) {
  if (n >= 1e9) return fixed(n / 1e9, 2) + "B";
  if (n >= 1e6) return fixed(n / 1e6, 2) + "M";
  return fixed(n / 1e3, 1) + "K";
}
std::string flops_text(double n) { return n >= 1e9 ? fixed(n / 1e9, 2) + " GFLOP" : fixed(n / 1e6, 3) + " MFLOP"; }

std::string layers_text(const std::vector<int64_t>& layers) {
  if (layers.empty()) return "none";
  std::ostringstream out;
  if (layers.size() <= 6) {
    for (size_t i = 0; i < layers.size(); ++i) out << (i ? ", " : "") << layers[i];
  } else {
    out << layers.size() << " of " << layers.front() << ".." << layers.back();
  }
  return out.str();
}

}  // namespace

Plan make_plan(const PlanInputs& in) {
  Plan p;
  p.inputs = in;
  p.stages = memory_plan(in);
  for (size_t s = 0; s < p.stages.size(); ++s) {
    if (p.stages[s].total() > p.peak().total()) p.peak_stage = static_cast<int64_t>(s);
  }
  p.flops = flops_per_token(in);
  if (in.cluster) p.time = estimate_step_time(in);
  return p;
}

Plan plan_recipe(const Recipe& recipe, const RolloutShape& rollout, const std::string& lora_base) {
  const auto options = TrainOptions::from_recipe(recipe);
  auto inputs = PlanInputs::from_options(options, ClusterSpec::from_recipe(recipe), lora_base);
  check(rollout.sequences >= 0 && rollout.tokens >= 0, "rollout sequences (", rollout.sequences, ") and tokens (",
        rollout.tokens, ") must be >= 0");
  inputs.rollout_sequences = rollout.sequences;
  inputs.rollout_tokens = rollout.tokens > 0 ? rollout.tokens : options.seq_len;
  return make_plan(inputs);
}

std::vector<LoraChoice> lora_choices(const Plan& plan) {
  check(plan.inputs.lora.has_value(), "lora_choices: not a LoRA plan");
  std::vector<LoraChoice> choices;
  for (const bool with_experts : {false, true}) {
    PlanInputs inputs = plan.inputs;
    if (with_experts) {
      inputs.lora->modules.targets.push_back("re:.*mlp\\.experts\\.[0-9]+\\.(gate|up|down)_proj$");
      inputs.lora->select(inputs.model);
    }
    for (const int64_t rank : {8, 16, 32, 64, 128}) {
      inputs.lora->rank = rank;
      const auto stages = memory_plan(inputs);
      double peak = 0;
      for (const auto& stage : stages) peak = std::max(peak, stage.total());
      choices.push_back({rank, with_experts, peak, !inputs.cluster || peak <= inputs.cluster->memory_bytes()});
    }
  }
  return choices;
}

bool Plan::fits() const { return !inputs.cluster || peak().total() <= inputs.cluster->memory_bytes(); }

void check_plan_fits(const Plan& plan) {
  if (plan.fits()) return;
  const auto& s = plan.peak();
  const auto& in = plan.inputs;
  fail("the plan does not fit: pipeline stage ", s.layout.stage, " needs ", gb(s.total()), " GB per GPU (state ",
       gb(s.state()), ", activations ", gb(s.activations), " = ", fixed(s.inflight_micro_batches, 1),
       " micro-batches x ", gb(s.activations_per_micro_batch), ", working ", gb(s.working), ") but cluster.memory_gib is ",
       in.cluster->memory_gib, " (", gb(in.cluster->memory_bytes()), " GB) on ", in.num_gpus, " GPUs with parallel.pp ",
       in.layout.pp, ", parallel.dp ", in.layout.dp, ", parallel.ep ", in.layout.ep, ", parallel.zero1 ",
       in.layout.zero1 ? "true" : "false", ", train.recompute ", in.recompute ? "true" : "false",
       ". Raise parallel.pp or parallel.ep, set parallel.zero1 or train.recompute, lower train.micro_batch_size, ",
       "or pass --ignore-plan (see k2forge plan --recipe ...)");
}

Json Plan::to_json() const {
  const auto& in = inputs;
  const auto counts = model::count_parameters(in.model);
  Json stages_json = Json::array();
  for (const auto& s : stages) stages_json.push_back(s.to_json());
  Json json{{"model", {{"total_params", counts.total()}, {"active_params", counts.active()}}},
            {"layout",
             {{"num_gpus", in.num_gpus},
              {"pp", in.layout.pp},
              {"dp", in.layout.dp},
              {"ep", in.layout.ep},
              {"virtual_stages", in.layout.virtual_stages},
              {"schedule", in.layout.schedule},
              {"zero1", in.layout.zero1},
              {"model_parallel_gpus", in.layout.pp * in.layout.ep}}},
            {"batch",
             {{"seq_len", in.seq_len},
              {"micro_batch_size", in.micro_batch_size},
              {"global_batch_size", in.global_batch_size},
              {"micro_batches_per_step", in.micro_batches_per_step()},
              {"recompute", in.recompute},
              {"dtype", in.bf16 ? "bf16" : "fp32"},
              {"optimizer", in.muon ? "muonclip" : "adamw"}}},
            {"stages", stages_json},
            {"peak_stage", peak_stage},
            {"peak_total_bytes", peak().total()},
            {"peak_state_bytes", peak().state()},
            {"rollout",
             {{"sequences_per_gpu", in.rollout_sequences},
              {"tokens", in.rollout_tokens},
              {"kv_cache_bytes_per_token", kv_cache_bytes_per_token_per_layer(in) * static_cast<double>(in.model.num_hidden_layers)},
              {"peak_stage_kv_cache_bytes", peak().kv_cache}}},
            {"fits", fits()}};
  if (in.lora) {
    Json choices = Json::array();
    for (const auto& c : lora_choices(*this))
      choices.push_back({{"rank", c.rank}, {"with_routed_experts", c.with_experts}, {"peak_total_bytes", c.peak_total_bytes},
                         {"fits", c.fits}});
    json["lora"] = {{"rank", in.lora->rank},
                    {"targets", in.lora->modules.targets},
                    {"ignore", in.lora->modules.ignore},
                    {"optimizer", in.lora->muon ? "muon" : "adamw"},
                    {"int4_experts", in.lora->int4_experts},
                    {"group_size", in.lora->group_size},
                    {"base", in.lora->base_note},
                    {"adapter_params_per_gpu", peak().adapters / 4},
                    {"choices", choices}};
    json["batch"]["optimizer"] = in.lora->muon ? "muon" : "adamw";
  }
  json["cluster"] = in.cluster ? in.cluster->to_json() : Json(nullptr);
  json["time"] = time ? time->to_json() : Json(nullptr);
  if (!time) {
    json["flops_per_token"] = Json{{"forward", flops.forward}, {"backward", flops.backward},
                                   {"recompute", flops.recompute}, {"executed", flops.executed}};
  }
  return json;
}

std::string Plan::to_table() const {
  const auto& in = inputs;
  const auto& s = peak();
  const auto counts = model::count_parameters(in.model);
  const char* w = in.bf16 ? "bf16" : "fp32";
  const double unit = s.total() >= kGB ? kGB : 1e6;  // the table in GB, or MB for tiny models
  std::ostringstream out;
  out << "model        " << count_text(static_cast<double>(counts.total())) << " parameters, "
      << count_text(static_cast<double>(counts.active())) << " active per token\n";
  out << "layout       " << in.num_gpus << " GPUs = pp " << in.layout.pp << " x dp " << in.layout.dp << " (ep "
      << in.layout.ep << " inside dp; model-parallel group " << in.layout.pp * in.layout.ep << " GPUs), schedule "
      << in.layout.schedule << (in.layout.virtual_stages > 1 ? " v " + std::to_string(in.layout.virtual_stages) : "")
      << ", ZeRO-1 " << (in.layout.zero1 ? "on" : "off") << "\n";
  out << "batch        " << in.global_batch_size << " x " << in.seq_len << " tokens, " << in.micro_batches_per_step()
      << " micro-batches of " << in.micro_batch_size << " per dp rank, recompute "
      << (in.recompute ? "on" : "off") << ", " << w << ", " << (in.muon ? "MuonClip" : "AdamW") << "\n";
  if (in.cluster) {
    const auto& c = *in.cluster;
    out << "cluster      " << (c.preset.empty() ? std::string("custom") : c.preset) << ": " << c.nodes << " nodes x "
        << c.gpus_per_node << " GPUs, " << c.memory_gib << " GiB, " << c.bf16_tflops << " bf16 TFLOP/s, NVLink "
        << c.intra_node_gbps << " / network " << c.inter_node_gbps << " Gbit/s, GEMM efficiency " << c.gemm_efficiency
        << "\n";
  }
  out << "\nper GPU, peak stage " << s.layout.stage << " of " << in.layout.pp << " (layers "
      << layers_text(s.layout.layers) << (s.layout.has_embedding ? ", embedding" : "")
      << (s.layout.has_head ? ", lm_head" : "") << "), " << (unit == kGB ? "GB" : "MB") << "\n";
  auto row = [&](const std::string& name, const std::string& dtype, double bytes) {
    std::string padded = name + std::string(name.size() < 44 ? 44 - name.size() : 1, ' ');
    out << "  " << padded << dtype << std::string(6 - dtype.size(), ' ') << fixed(bytes / unit, 2) << "\n";
  };
  if (in.lora) {
    const double adapters = s.adapters / 4;
    row("frozen base (" + count_text(static_cast<double>(s.layout.stored_params())) + " params), experts " +
            (in.lora->int4_experts ? "INT4" : w), w, s.weights);
    row("LoRA adapters (" + count_text(adapters) + " params, r " + std::to_string(in.lora->rank) + ")", "fp32", s.adapters);
    row("adapter gradients", "fp32", s.gradients);
    row(in.lora->muon ? "adapter Muon momentum" : "adapter AdamW moments", "fp32",
        in.lora->muon ? s.muon_momentum : s.adamw_moments);
  } else {
    row("weights (" + count_text(static_cast<double>(s.layout.stored_params())) + " params)", w, s.weights);
    row("gradients", "fp32", s.gradients);
    if (in.bf16) row(std::string("master weights") + (in.layout.zero1 ? " (ZeRO-1)" : ""), "fp32", s.master_weights);
    row(std::string("Muon momentum") + (in.layout.zero1 ? " (ZeRO-1)" : ""), "fp32", s.muon_momentum);
    row(std::string("AdamW moments") + (in.layout.zero1 ? " (ZeRO-1)" : ""), "fp32", s.adamw_moments);
  }
  row("= model and optimizer state", "", s.state());
  row("activations (" + fixed(s.activations_per_micro_batch / unit, 2) + " x " + fixed(s.inflight_micro_batches, 1) + " in flight)",
      w, s.activations);
  std::string working = in.recompute ? "layer rebuilt" : "";
  if (s.layout.has_head) working += std::string(working.empty() ? "" : ", ") + "loss";
  row("working" + (working.empty() ? std::string() : " (" + working + ")"), "", s.working);
  row("= total", "", s.total());
  if (in.cluster) {
    out << "  of " << fixed(in.cluster->memory_bytes() / unit, 2) << (unit == kGB ? " GB: " : " MB: ") << (fits() ? "fits" : "DOES NOT FIT") << "\n";
  }
  if (in.rollout_sequences > 0) {
    row("RL rollout KV cache (" + std::to_string(in.rollout_sequences) + " x " + std::to_string(in.rollout_tokens) +
            " tokens)",
        w, s.kv_cache);
  }
  if (in.lora) {
    out << "\nLoRA         base: " << in.lora->base_note << "\n             targets";
    for (const auto& t : in.lora->modules.targets) out << " " << t;
    out << "; ignore";
    for (const auto& t : in.lora->modules.ignore) out << " " << t;
    out << "\n             peak per GPU by rank (" << (unit == kGB ? "GB" : "MB") << "), these targets | with the routed experts too:\n";
    const auto choices = lora_choices(*this);
    const size_t half = choices.size() / 2;
    for (size_t i = 0; i < half; ++i) {
      const auto& a = choices[i];
      const auto& b = choices[i + half];
      out << "             r " << a.rank << std::string(a.rank < 10 ? 4 : a.rank < 100 ? 3 : 2, ' ') << fixed(a.peak_total_bytes / unit, 2)
          << (in.cluster ? (a.fits ? " fits" : " DOES NOT FIT") : "") << " | " << fixed(b.peak_total_bytes / unit, 2)
          << (in.cluster ? (b.fits ? " fits" : " DOES NOT FIT") : "") << "\n";
    }
  }
  out << "\nper token    forward " << flops_text(flops.forward) << ", backward " << flops_text(flops.backward)
      << ", recompute " << (flops.recompute > 0 ? flops_text(flops.recompute) : "0") << " (executed, full attention square: "
      << flops_text(flops.executed) << ")\n";
  if (time) {
    const auto& t = *time;
    out << "comm per GPU per step  EP all-to-all " << gb(t.comm.ep_all_to_all) << " GB, PP send/recv "
        << gb(t.comm.pp_send_recv) << " GB, DP reduce-scatter " << gb(t.comm.dp_reduce_scatter) << " GB, all-gather "
        << gb(t.comm.dp_all_gather) << " GB\n";
    out << "step time    " << fixed(t.step_s, 2) << " s = compute " << fixed(t.compute_s, 2) << " + bubble "
        << fixed(t.bubble_s, 2) << " + EP exposed " << fixed(t.ep_exposed_s, 2) << " + PP " << fixed(t.pp_exposed_s, 2)
        << " + DP " << fixed(t.dp_s, 2) << " (slowest stage " << t.slowest_stage << ")\n";
    out << "throughput   " << fixed(t.tokens_per_s_per_gpu, 0) << " tokens/s per GPU, MFU "
        << fixed(100 * t.mfu, 1) << "%, " << fixed(t.gpu_hours_per_trillion_tokens / 1e3, 1)
        << "K GPU-hours per trillion tokens\n";
  } else {
    out << "no [cluster] in the recipe: no fit check or time estimate\n";
  }
  return out.str();
}

}  // namespace k2f::train::plan
