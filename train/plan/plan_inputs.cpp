#include "train/plan/plan_inputs.h"

#include <algorithm>
#include <filesystem>

#include "base/error.h"
#include "base/json_io.h"

namespace k2f::train::plan {
namespace fs = std::filesystem;

namespace {

// The LoRA base's format: from its config.json when the directory is here, else `lora_base`.
LoraPlan lora_plan_of(const TrainOptions& o, const std::string& lora_base) {
  LoraPlan lora;
  lora.rank = o.lora.rank;
  lora.modules = o.lora.modules;
  lora.muon = o.lora_optimizer == "muon";
  check(lora_base.empty() || lora_base == "auto" || lora_base == "int4" || lora_base == "bf16", "--lora-base \"",
        lora_base, "\": expected auto, int4 or bf16");
  const fs::path config = fs::path(o.init_from) / "config.json";
  if (!o.init_from.empty() && fs::exists(config)) {
    const Json json = read_json_file(config.string());
    const Json quantization = json.value("quantization_config", Json::object());
    lora.int4_experts = quantization.dump().find("pack-quantized") != std::string::npos;
    if (lora.int4_experts) {
      for (const auto& [name, group] : quantization.value("config_groups", Json::object()).items())
        if (group.contains("weights")) lora.group_size = group["weights"].value("group_size", lora.group_size);
    }
    lora.base_note = std::string(lora.int4_experts ? "INT4" : "bf16") + " routed experts, as " + config.string() + " says";
    check(lora_base.empty() || lora_base == "auto" || (lora_base == "int4") == lora.int4_experts, "--lora-base ",
          lora_base, ": ", config.string(), " describes a ", lora.int4_experts ? "INT4" : "non-INT4", " base");
  } else if (lora_base == "bf16") {
    lora.int4_experts = false;
    lora.base_note = "bf16 routed experts (--lora-base bf16)";
  } else {
    lora.base_note = lora_base == "int4" ? "INT4 routed experts (--lora-base int4)"
                                         : "INT4 routed experts, assumed: train.init_from is not here "
                                           "(--lora-base bf16 plans a bf16 base)";
  }
  return lora;
}

}  // namespace

PlanInputs PlanInputs::from_options(const TrainOptions& o, const std::optional<ClusterSpec>& cluster,
                                    const std::string& lora_base) {
  PlanInputs in;
  in.model = o.model;
  in.cluster = cluster;
  in.num_gpus = cluster ? cluster->num_gpus() : o.layout.pp * std::max<int64_t>(o.layout.dp, 1);
  in.layout = o.resolved_layout(in.num_gpus);
  check(in.layout.dp != 0, "parallel.pp (", o.layout.pp, ") must divide the cluster's ", in.num_gpus, " GPUs");
  in.layout.validate(in.num_gpus, o.model, "parallel");
  in.seq_len = o.seq_len;
  in.micro_batch_size = o.micro_batch_size;
  in.global_batch_size = o.global_batch_size;
  check(in.global_batch_size % (in.layout.dp * in.micro_batch_size) == 0, "train.global_batch_size (",
        in.global_batch_size, ") must be a multiple of train.micro_batch_size (", in.micro_batch_size,
        ") x parallel.dp (", in.layout.dp, ")");
  in.recompute = o.recompute;
  in.bf16 = o.dtype != torch::kFloat32;
  in.muon = o.optimizer.name == "muonclip";
  if (o.lora_enabled()) {
    in.lora = lora_plan_of(o, lora_base);
    in.lora->select(o.model);
  }
  return in;
}

}  // namespace k2f::train::plan
