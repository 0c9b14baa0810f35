// [cluster]: absent means no cluster (the tiny recipes keep their behaviour), presets with
// overrides, and every error a user can reach names the key and its section.
#include <gtest/gtest.h>

#include <fstream>

#include "test_util.h"
#include "train/plan/cluster_spec.h"

namespace k2f::train::plan {
namespace {

using k2f::testing::expect_error;
using k2f::testing::ScratchDir;

Recipe recipe_with(const std::string& toml, const std::vector<std::string>& overrides = {}) {
  ScratchDir dir("cluster");
  std::ofstream(dir / "r.toml") << toml;
  return Recipe::load(dir / "r.toml", overrides);
}

TEST(ClusterSpec, AbsentWithoutAnyClusterValue) {
  EXPECT_FALSE(ClusterSpec::from_recipe(recipe_with("[train]\nsteps = 3\n")).has_value());
  // A resolved recipe writes every key with its default; read back, it still has no cluster.
  const auto resolved = recipe_with(
      "[cluster]\npreset = \"\"\ngpus_per_node = 0\nnodes = 0\nmemory_gib = 0.0\nbf16_tflops = 0.0\n"
      "intra_node_gbps = 0.0\ninter_node_gbps = 0.0\ngemm_efficiency = 0.0\n");
  EXPECT_FALSE(ClusterSpec::from_recipe(resolved).has_value());
}

TEST(ClusterSpec, PresetWithOverrides) {
  const auto c = ClusterSpec::from_recipe(recipe_with("[cluster]\npreset = \"h800\"\nnodes = 256\n", {"cluster.memory_gib=64"}));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->num_gpus(), 2048);
  EXPECT_EQ(c->memory_gib, 64);
  EXPECT_EQ(c->bf16_tflops, 989);
  EXPECT_EQ(c->inter_node_gbps, 400);
  for (const char* name : {"h100", "h200", "b200"}) EXPECT_NO_THROW(ClusterSpec::preset_named(name).validate());
}

TEST(ClusterSpec, ErrorsNameTheKeyAndSection) {
  expect_error([] { recipe_with("[cluster]\npreset = \"h800\"\nmemory_gb = 80\n"); },
               {"unknown key \"memory_gb\" in section [cluster]", "memory_gib"});
  expect_error([] { ClusterSpec::from_recipe(recipe_with("[cluster]\npreset = \"a100\"\n")); },
               {"cluster.preset (\"a100\")", "h800, h100, h200, b200"});
  expect_error([] { ClusterSpec::from_recipe(recipe_with("[cluster]\ngpus_per_node = 8\nnodes = 2\n")); },
               {"cluster.memory_gib (0)"});
  expect_error([] { ClusterSpec::from_recipe(recipe_with("[cluster]\npreset = \"h100\"\ngemm_efficiency = 1.5\n")); },
               {"cluster.gemm_efficiency (1.5)"});
}

}  // namespace
}  // namespace k2f::train::plan
