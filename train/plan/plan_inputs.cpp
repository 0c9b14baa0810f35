#include "train/plan/plan_inputs.h"

#include <algorithm>

#include "base/error.h"

namespace k2f::train::plan {

PlanInputs PlanInputs::from_options(const TrainOptions& o, const std::optional<ClusterSpec>& cluster) {
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
  return in;
}

}  // namespace k2f::train::plan
