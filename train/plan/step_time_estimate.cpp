#include "train/plan/step_time_estimate.h"

#include <algorithm>

#include "base/error.h"
#include "model/param_count.h"
#include "train/plan/lora_plan.h"
#include "train/plan/pipeline_inflight.h"
#include "train/plan/stage_layout.h"

namespace k2f::train::plan {
namespace {

constexpr double kGbit = 1e9 / 8;  // bytes per second in one Gbit/s

// Forward FLOPs per token of one stage's layers (and head), each query seeing `keys` keys.
double stage_forward_flops(const PlanInputs& in, const StageLayout& stage, double keys, bool with_head) {
  double flops = with_head && stage.has_head ? model::head_forward_flops(in.model) : 0;
  for (int64_t l : stage.layers) flops += model::layer_forward_flops(in.model, l, keys).total();
  return flops;
}

// Seconds to send `bytes` from one GPU to the other members of a group of `group` ranks whose
// ranks are consecutive (stride 1) or `stride` apart, split over NVLink and the network.
double group_send_seconds(const ClusterSpec& c, double bytes, int64_t group, int64_t stride) {
  if (group <= 1) return 0;
  const int64_t same_node_peers = stride >= c.gpus_per_node ? 0 : std::min(group, c.gpus_per_node / stride) - 1;
  const double intra_share = static_cast<double>(same_node_peers) / static_cast<double>(group - 1);
  const double intra_s = bytes * intra_share / (c.intra_node_gbps * kGbit);
  const double inter_s = intra_share < 1 ? bytes * (1 - intra_share) / (c.inter_node_gbps * kGbit) : 0;
  return std::max(intra_s, inter_s);
}

}  // namespace

FlopsPerToken flops_per_token(const PlanInputs& in) {
  FlopsPerToken f;
  f.forward = model::forward_flops_per_token(in.model, in.seq_len);
  // Backward computes the input gradient and the weight gradient, each about a forward; LoRA's
  // frozen base needs only the input gradient (its adapters' weight gradients are negligible).
  f.backward = (in.lora ? 1 : 2) * f.forward;
  double layers_full = 0, full = model::head_forward_flops(in.model);
  for (int64_t l = 0; l < in.model.num_hidden_layers; ++l) {
    const double layer = model::layer_forward_flops(in.model, l, static_cast<double>(in.seq_len)).total();
    layers_full += layer;
    full += layer;
  }
  f.recompute = in.recompute ? layers_full : 0;
  f.executed = (in.lora ? 2 : 3) * full + f.recompute;
  return f;
}

Json CommPerStep::to_json() const {
  return Json{{"ep_all_to_all_bytes", ep_all_to_all},
              {"pp_send_recv_bytes", pp_send_recv},
              {"dp_reduce_scatter_bytes", dp_reduce_scatter},
              {"dp_all_gather_bytes", dp_all_gather}};
}

StepTimeEstimate estimate_step_time(const PlanInputs& in) {
  check(in.cluster.has_value(), "the step-time estimate needs a [cluster] section");
  const ClusterSpec& c = *in.cluster;
  const auto& l = in.layout;
  StepTimeEstimate t;
  t.flops = flops_per_token(in);
  const double m = static_cast<double>(in.micro_batches_per_step());
  const double tokens = static_cast<double>(in.tokens_per_micro_batch());
  const double a = static_cast<double>(in.activation_bytes());
  const double D = static_cast<double>(in.model.hidden_size), K = static_cast<double>(in.model.num_experts_per_tok);
  const double rate = c.bf16_tflops * 1e12 * c.gemm_efficiency;
  const auto stages = memory_plan(in);

  double slowest_compute = -1, slowest_ep = 0;
  for (const auto& s : stages) {
    const double fwd = stage_forward_flops(in, s.layout, static_cast<double>(in.seq_len), true);
    const double layers_fwd = stage_forward_flops(in, s.layout, static_cast<double>(in.seq_len), false);
    const double passes_of_forward = in.lora ? 2 : 3;  // forward + backward (see flops_per_token)
    const double compute = tokens * (passes_of_forward * fwd + (in.recompute ? layers_fwd : 0)) / rate;
    int64_t moe_layers = 0;
    for (int64_t layer : s.layout.layers) moe_layers += in.model.is_moe_layer(layer) ? 1 : 0;
    // Dispatch + combine in forward and backward (and once more when the forward is recomputed).
    const double passes = in.recompute ? 6 : 4;
    const double ep_bytes = passes * static_cast<double>(moe_layers) * tokens * K * D * a *
                            static_cast<double>(l.ep - 1) / static_cast<double>(l.ep);
    const double ep_s = group_send_seconds(c, ep_bytes, l.ep, 1);
    if (compute > slowest_compute) {
      slowest_compute = compute, slowest_ep = ep_s, t.slowest_stage = s.layout.stage;
      t.comm.ep_all_to_all = ep_bytes * m;
    }
  }
  t.compute_s = slowest_compute * m;
  t.bubble_s = slowest_compute * bubble_micro_batches(l);
  const bool overlapped = l.schedule == "interleaved";
  t.ep_exposed_s = m * (overlapped ? std::max(0.0, slowest_ep - slowest_compute) : slowest_ep);
  // PP: an activation forward and its gradient backward across each of the v chunk boundaries;
  // stage neighbours are dp ranks apart, so on other nodes once dp >= gpus_per_node.
  if (l.pp > 1) {
    const double pp_bytes = 2.0 * static_cast<double>(l.virtual_stages) * tokens * D * a;
    t.comm.pp_send_recv = pp_bytes * m;
    t.pp_exposed_s = m * group_send_seconds(c, pp_bytes, 2, l.dp);
  }
  // DP: gradients (fp32) and weights of the slowest stage, replicated ones over dp (consecutive
  // ranks), routed experts over dp/ep (ranks ep apart).
  const auto& stage = stages[static_cast<size_t>(t.slowest_stage)].layout;
  const double rs_factor = l.zero1 ? 1.0 : 2.0;  // all-reduce = reduce-scatter + all-gather of grads
  auto ring = [&](double params, int64_t group) {
    if (group <= 1) return std::pair<double, double>{0, 0};
    const double share = static_cast<double>(group - 1) / static_cast<double>(group);
    const double rs = rs_factor * params * 4 * share;
    const double ag = l.zero1 ? params * a * share : 0;
    t.comm.dp_reduce_scatter += rs;
    t.comm.dp_all_gather += ag;
    return std::pair<double, double>{rs, ag};
  };
  // LoRA: only the adapters' gradients (and weights, under ZeRO-1) cross the data-parallel group.
  const auto adapters = in.lora ? adapter_params(in.model, stage, l.ep, *in.lora) : AdapterParams{};
  const auto [rs_rep, ag_rep] = ring(static_cast<double>(in.lora ? adapters.replicated : stage.replicated_params), l.dp);
  const auto [rs_exp, ag_exp] = ring(static_cast<double>(in.lora ? adapters.experts : stage.expert_params), l.dp / l.ep);
  t.dp_s = group_send_seconds(c, rs_rep + ag_rep, l.dp, 1) + group_send_seconds(c, rs_exp + ag_exp, l.dp / l.ep, l.ep);
  t.step_s = t.compute_s + t.bubble_s + t.ep_exposed_s + t.pp_exposed_s + t.dp_s;
  t.tokens_per_step = static_cast<double>(in.global_batch_size * in.seq_len);
  t.tokens_per_s_per_gpu = t.tokens_per_step / t.step_s / static_cast<double>(in.num_gpus);
  t.mfu = t.tokens_per_s_per_gpu * t.flops.useful() / (c.bf16_tflops * 1e12);
  t.gpu_hours_per_trillion_tokens = 1e12 / t.tokens_per_s_per_gpu / 3600.0;
  return t;
}

Json StepTimeEstimate::to_json() const {
  return Json{{"flops_per_token",
               {{"forward", flops.forward},
                {"backward", flops.backward},
                {"recompute", flops.recompute},
                {"useful", flops.useful()},
                {"executed", flops.executed}}},
              {"comm_per_step_per_gpu", comm.to_json()},
              {"slowest_stage", slowest_stage},
              {"compute_s", compute_s},
              {"bubble_s", bubble_s},
              {"ep_exposed_s", ep_exposed_s},
              {"pp_exposed_s", pp_exposed_s},
              {"dp_s", dp_s},
              {"step_s", step_s},
              {"tokens_per_step", tokens_per_step},
              {"tokens_per_s_per_gpu", tokens_per_s_per_gpu},
              {"mfu", mfu},
              {"gpu_hours_per_trillion_tokens", gpu_hours_per_trillion_tokens}};
}

}  // namespace k2f::train::plan
