// The machines a run is planned for: the recipe's [cluster] section, a preset (h800, h100, h200,
// b200) with any value overridden. A recipe with no cluster value has no cluster, and then
// `k2forge train` skips its plan check, so the tiny CPU recipes behave as before.
#pragma once

#include <optional>
#include <string>

#include "base/json_io.h"
#include "train/recipe.h"

namespace k2f::train::plan {

struct ClusterSpec {
  std::string preset;          // "" when every value was given
  int64_t gpus_per_node = 0;
  int64_t nodes = 0;
  double memory_gib = 0;       // per GPU
  double bf16_tflops = 0;      // dense peak per GPU
  double intra_node_gbps = 0;  // Gbit/s per GPU and direction inside a node (NVLink)
  double inter_node_gbps = 0;  // Gbit/s per GPU and direction between nodes (RDMA NICs)
  double gemm_efficiency = 0;  // fraction of the peak the model's matmuls reach

  int64_t num_gpus() const { return gpus_per_node * nodes; }
  double memory_bytes() const { return memory_gib * 1024.0 * 1024.0 * 1024.0; }
  // Throws naming "cluster.<key>" and the value.
  void validate() const;
  Json to_json() const;

  // The named preset ("h800", "h100", "h200", "b200"); throws listing them otherwise.
  static ClusterSpec preset_named(const std::string& name);
  // nullopt when the recipe sets no cluster value (no [cluster] section).
  static std::optional<ClusterSpec> from_recipe(const Recipe& recipe);
};

}  // namespace k2f::train::plan
