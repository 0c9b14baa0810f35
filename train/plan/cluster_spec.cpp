// Presets are datasheet figures (dense bf16, no sparsity; NVLink per direction; one 400 Gbit/s
// NIC per GPU as in the K2 report's H800 nodes). gemm_efficiency 0.6 is a typical large-GEMM
// fraction of peak for MoE training, an assumption every estimate states.
#include "train/plan/cluster_spec.h"

#include "base/error.h"

namespace k2f::train::plan {
namespace {

ClusterSpec make(const std::string& name, double memory_gib, double tflops, double intra_gbps) {
  ClusterSpec c;
  c.preset = name;
  c.gpus_per_node = 8;
  c.nodes = 1;
  c.memory_gib = memory_gib;
  c.bf16_tflops = tflops;
  c.intra_node_gbps = intra_gbps;
  c.inter_node_gbps = 400;
  c.gemm_efficiency = 0.6;
  return c;
}

}  // namespace

ClusterSpec ClusterSpec::preset_named(const std::string& name) {
  if (name == "h800") return make(name, 80, 989, 1600);   // NVLink 400 GB/s both ways
  if (name == "h100") return make(name, 80, 989, 3600);   // NVLink 900 GB/s both ways
  if (name == "h200") return make(name, 141, 989, 3600);
  if (name == "b200") return make(name, 180, 2250, 7200);  // NVLink 5: 1.8 TB/s both ways
  fail("cluster.preset (\"", name, "\") must be one of h800, h100, h200, b200 (or \"\" with every value given)");
}

void ClusterSpec::validate() const {
  check(gpus_per_node > 0, "cluster.gpus_per_node (", gpus_per_node, ") must be positive");
  check(nodes > 0, "cluster.nodes (", nodes, ") must be positive");
  check(memory_gib > 0, "cluster.memory_gib (", memory_gib, ") must be positive");
  check(bf16_tflops > 0, "cluster.bf16_tflops (", bf16_tflops, ") must be positive");
  check(intra_node_gbps > 0, "cluster.intra_node_gbps (", intra_node_gbps, ") must be positive");
  check(inter_node_gbps > 0 || nodes == 1, "cluster.inter_node_gbps (", inter_node_gbps, ") must be positive for ",
        nodes, " nodes");
  check(gemm_efficiency > 0 && gemm_efficiency <= 1, "cluster.gemm_efficiency (", gemm_efficiency,
        ") must be in (0, 1]");
}

Json ClusterSpec::to_json() const {
  return Json{{"preset", preset},
              {"gpus_per_node", gpus_per_node},
              {"nodes", nodes},
              {"num_gpus", num_gpus()},
              {"memory_gib", memory_gib},
              {"bf16_tflops", bf16_tflops},
              {"intra_node_gbps", intra_node_gbps},
              {"inter_node_gbps", inter_node_gbps},
              {"gemm_efficiency", gemm_efficiency}};
}

std::optional<ClusterSpec> ClusterSpec::from_recipe(const Recipe& r) {
  // Presence is decided by values, not by which keys were written, so a resolved recipe (every
  // key written, defaults included) read back has a cluster exactly when the original had one.
  const std::string preset = r.get_string("cluster.preset");
  const bool any = !preset.empty() || r.get_int("cluster.gpus_per_node") != 0 || r.get_int("cluster.nodes") != 0 ||
                   r.get_float("cluster.memory_gib") != 0 || r.get_float("cluster.bf16_tflops") != 0 ||
                   r.get_float("cluster.intra_node_gbps") != 0 || r.get_float("cluster.inter_node_gbps") != 0 ||
                   r.get_float("cluster.gemm_efficiency") != 0;
  if (!any) return std::nullopt;
  ClusterSpec c;
  if (!preset.empty()) {
    c = preset_named(preset);
  } else {
    c.gemm_efficiency = 0.6;
  }
  auto override_int = [&](const char* key, int64_t& field) {
    if (r.get_int(key) != 0) field = r.get_int(key);
  };
  auto override_float = [&](const char* key, double& field) {
    if (r.get_float(key) != 0) field = r.get_float(key);
  };
  override_int("cluster.gpus_per_node", c.gpus_per_node);
  override_int("cluster.nodes", c.nodes);
  override_float("cluster.memory_gib", c.memory_gib);
  override_float("cluster.bf16_tflops", c.bf16_tflops);
  override_float("cluster.intra_node_gbps", c.intra_node_gbps);
  override_float("cluster.inter_node_gbps", c.inter_node_gbps);
  override_float("cluster.gemm_efficiency", c.gemm_efficiency);
  c.validate();
  return c;
}

}  // namespace k2f::train::plan
