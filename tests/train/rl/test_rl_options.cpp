// train/rl/rl_options.cpp: the [rl] section is strict like every recipe section, and bad values
// are refused with the dotted key and the value.
#include <gtest/gtest.h>

#include <fstream>

#include "test_util.h"
#include "train/rl/rl_options.h"

namespace k2f::train::rl {
namespace {

using k2f::testing::expect_error;

std::string write_recipe(const k2f::testing::ScratchDir& dir, const std::string& text) {
  const std::string path = dir / "r.toml";
  std::ofstream(path) << text;
  return path;
}

TEST(RlOptions, UnknownKeysNameTheKey) {
  k2f::testing::ScratchDir dir("rl-options");
  const auto path = write_recipe(dir, "[rl]\ntua = 0.1\n");
  expect_error([&] { Recipe::load(path); }, {"unknown key \"tua\" in section [rl]", "did you mean \"tau\"?"});
  expect_error([&] { Recipe::load("", {"rl.max_tool_call=3"}); }, {"unknown key \"max_tool_call\" in section [rl]"});
}

TEST(RlOptions, ValuesAreReadAndChecked) {
  k2f::testing::ScratchDir dir("rl-options");
  const auto path = write_recipe(dir,
                                 "[train]\ninit_from = \"x\"\nsteps = 10\n[rl]\nobjective = \"grpo\"\nsamples_per_prompt = 6\n"
                                 "temperature_start = 1.2\ntemperature_end = 0.6\n");
  auto o = RlOptions::from_recipe(Recipe::load(path));
  EXPECT_EQ(o.objective, Objective::grpo);
  EXPECT_EQ(o.samples_per_prompt, 6);
  EXPECT_NO_THROW(o.validate());
  EXPECT_DOUBLE_EQ(o.temperature(0), 1.2);
  EXPECT_DOUBLE_EQ(o.temperature(9), 0.6);
  EXPECT_NEAR(o.temperature(3), 1.0, 1e-12);
  o.samples_per_prompt = 1;
  expect_error([&] { o.validate(); }, {"rl.samples_per_prompt (1) must be at least 2"});
  o.samples_per_prompt = 4;
  o.ptx_coef = 0.5;
  expect_error([&] { o.validate(); }, {"rl.ptx_coef (0.5) > 0 needs rl.ptx_data"});
  o.ptx_coef = 0;
  o.train.init_from = "";
  expect_error([&] { o.validate(); }, {"train.init_from is empty"});
  expect_error([&] { RlOptions::from_recipe(Recipe::load(path, {"rl.objective=ppo"})); },
               {"rl.objective (\"ppo\") must be \"pmd_mean\" or \"grpo\""});
}

}  // namespace
}  // namespace k2f::train::rl
