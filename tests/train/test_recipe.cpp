// train/recipe.cpp: strict keys with hints, types, --set overrides, cross-field validation that
// quotes values, and the resolved recipe reading back to the same values.
#include <gtest/gtest.h>

#include <fstream>

#include "test_util.h"
#include "train/recipe.h"

namespace k2f::train {
namespace {

std::string write_recipe(const testing::ScratchDir& dir, const std::string& text) {
  const std::string path = dir / "r.toml";
  std::ofstream(path) << text;
  return path;
}

const char* kTiny = R"(
[model]
vocab_size = 256
hidden_size = 64
num_hidden_layers = 2
n_routed_experts = 8
num_experts_per_tok = 2
[model.rope_scaling]
factor = 8.0
[train]
seed = 3
)";

// Found by fuzz/fuzz_recipe (kept in fuzz/regressions/recipe/): toml++ 3.3 reaches undefined
// behaviour on some non-ASCII characters wherever it asks whether a character is whitespace (after
// a value, after a backslash in a string, in a multi-line string's trimmed indentation), so
// recipe.cpp hands it those characters as private-use stand-ins (train/toml_text.h). Errors then
// come from toml++ at their position and quote the original character; strings and keys read
// back as written.
TEST(Recipe, NonAsciiCharactersReadBackOrFailAtTheirPositionQuotingThem) {
  const std::string regressions = std::string(K2F_SOURCE_DIR) + "/fuzz/regressions/recipe/";
  testing::expect_error([&] { Recipe::load(regressions + "non_ascii_after_a_value.toml"); },
                        {"non_ascii_after_a_value.toml:5:15: invalid TOML", "saw '\u0360'"});
  testing::expect_error([&] { Recipe::load(regressions + "quote_after_a_number_then_non_ascii.toml"); },
                        {"quote_after_a_number_then_non_ascii.toml:2:25: invalid TOML"});
  testing::expect_error([&] { Recipe::load(regressions + "backslash_then_non_ascii_in_a_multiline_string.toml"); },
                        {"backslash_then_non_ascii_in_a_multiline_string.toml:1:111: invalid TOML",
                         "unknown escape sequence '\\\u02cd'"});
  testing::ScratchDir dir("recipe-unicode");
  const std::string inside = write_recipe(
      dir, "# caf\u00e9 \u4e2d\n[train]\nrun_dir = \"runs/\u00e9\u3001\" # \u00e9\ninit_from = '''\u00e9'''\n");
  EXPECT_EQ(Recipe::load(inside).get_string("train.run_dir"), "runs/\u00e9\u3001");
  EXPECT_EQ(Recipe::load(inside).get_string("train.init_from"), "\u00e9");
  const std::string trimmed = write_recipe(dir, "[train]\nrun_dir = \"\"\"\\\n  \u00a7x\"\"\"\n");
  EXPECT_EQ(Recipe::load(trimmed).get_string("train.run_dir"), "\u00a7x");
  testing::expect_error([&] { Recipe::load(write_recipe(dir, "[train]\n\"st\u00e9ps\" = 3\n")); },
                        {"unknown key \"st\u00e9ps\" in section [train]", "did you mean \"steps\""});
  testing::expect_error([&] { Recipe::load(write_recipe(dir, "[train]\nsteps = 3\u00e9\n")); },
                        {"r.toml:2:10: invalid TOML", "saw '\u00e9'"});
  testing::expect_error([&] { Recipe::load(write_recipe(dir, "[train]\nsteps = 3\u00a0\n")); },
                        {"r.toml:2:10: invalid TOML", "expected space or tab"});
}

// Found by fuzz/fuzz_recipe (kept in fuzz/regressions/recipe/): a table header starting with ';'
// trips an assertion inside toml++ 3.3 when NDEBUG is off; the release build must report it as
// invalid TOML at its line and column.
TEST(Recipe, FuzzFoundTableHeaderIsInvalidTomlAtItsPosition) {
  const std::string path =
      std::string(K2F_SOURCE_DIR) + "/fuzz/regressions/recipe/table_header_starting_with_semicolon.toml";
  testing::expect_error([&] { Recipe::load(path); }, {"table_header_starting_with_semicolon.toml:29:2: invalid TOML",
                                                      "saw ';'"});
}

TEST(Recipe, EmptyModelSectionIsKimiK2) {
  const auto c = model_config_from_recipe(Recipe::load(""));
  EXPECT_EQ(c.hidden_size, 7168);
  EXPECT_EQ(c.n_routed_experts, 384);
  EXPECT_EQ(*c.q_lora_rank, 1536);
}

TEST(Recipe, UnknownKeyNamesSectionAndClosestKey) {
  testing::ScratchDir dir("recipe");
  const auto path = write_recipe(dir, "[model]\nhiden_size = 64\n");
  testing::expect_error([&] { Recipe::load(path); },
                        {path, "unknown key \"hiden_size\" in section [model]", "did you mean \"hidden_size\"?"});
  const auto nested = write_recipe(dir, "[model.rope_scaling]\nfactr = 2.0\n");
  testing::expect_error([&] { Recipe::load(nested); },
                        {"unknown key \"factr\" in section [model.rope_scaling]", "\"factor\""});
  const auto section = write_recipe(dir, "[modle]\nx = 1\n");
  testing::expect_error([&] { Recipe::load(section); }, {"unknown section [modle]", "[model]"});
}

TEST(Recipe, TypesAreChecked) {
  testing::ScratchDir dir("recipe");
  testing::expect_error([&] { Recipe::load(write_recipe(dir, "[model]\nhidden_size = \"wide\"\n")); },
                        {"model.hidden_size must be an integer", "\"wide\""});
  testing::expect_error([&] { Recipe::load(write_recipe(dir, "[model]\nhidden_size = 64\n[[")); }, {"invalid TOML"});
}

TEST(Recipe, SetOverridesUseDottedPaths) {
  testing::ScratchDir dir("recipe");
  const auto path = write_recipe(dir, kTiny);
  const auto r = Recipe::load(path, {"model.hidden_size=96", "train.dtype=fp32", "model.rope_scaling.factor=2"});
  EXPECT_EQ(r.get_int("model.hidden_size"), 96);
  EXPECT_EQ(r.get_string("train.dtype"), "fp32");
  EXPECT_DOUBLE_EQ(r.get_float("model.rope_scaling.factor"), 2.0);
  EXPECT_TRUE(r.was_set("model.hidden_size"));
  EXPECT_FALSE(r.was_set("model.kv_lora_rank"));
  testing::expect_error([&] { Recipe::load(path, {"model.hidden_size=abc"}); },
                        {"--set model.hidden_size=abc", "must be an integer"});
  testing::expect_error([&] { Recipe::load(path, {"model.hiden_size=3"}); }, {"did you mean \"hidden_size\"?"});
}

TEST(Recipe, CrossFieldViolationsQuoteValues) {
  testing::ScratchDir dir("recipe");
  const auto path = write_recipe(dir, kTiny);
  testing::expect_error([&] { Recipe::load(path, {"model.num_experts_per_tok=9"}); },
                        {"model.num_experts_per_tok (9) must be <= model.n_routed_experts (8)"});
  testing::expect_error([&] { Recipe::load(path, {"model.n_group=3"}); },
                        {"model.n_group (3) must divide model.n_routed_experts (8)"});
  testing::expect_error([&] { Recipe::load(path, {"train.dtype=fp8"}); }, {"train.dtype", "fp8"});
}

TEST(Recipe, ResolvedRecipeReadsBackIdentically) {
  testing::ScratchDir dir("recipe");
  const auto original = Recipe::load(write_recipe(dir, kTiny), {"model.q_lora_rank=0"});
  original.write_resolved(dir / "run");
  const auto again = Recipe::load(dir / "run/recipe.resolved.toml");
  EXPECT_EQ(original.to_toml().substr(original.to_toml().find('\n')), again.to_toml().substr(again.to_toml().find('\n')));
  EXPECT_FALSE(model_config_from_recipe(again).q_lora_rank.has_value());
  EXPECT_EQ(again.get_int("train.seed"), 3);
}

TEST(Recipe, EditDistance) {
  EXPECT_EQ(edit_distance("hiden_size", "hidden_size"), 1u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

}  // namespace
}  // namespace k2f::train
