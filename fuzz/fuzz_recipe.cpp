// Fuzzes the recipe reader: TOML syntax, unknown keys, wrong types and out-of-range values all
// end in a message naming the key; an accepted recipe converts to validated TrainOptions.
#include <cstdint>
#include <exception>

#include "fuzz/fuzz_input.h"
#include "train/recipe.h"
#include "train/train_options.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = k2f::fuzz::write_scratch_file("recipe.toml", data, size);
  try {
    const auto recipe = k2f::train::Recipe::load(path);
    (void)recipe.to_toml();
    const auto options = k2f::train::TrainOptions::from_recipe(recipe);
    options.validate();
  } catch (const std::exception&) {
  }
  return 0;
}
